//! The checks of `lab-check`, run on the real README.md, tutorial.md and
//! workspace. `LAB_BLESS=1 cargo test -p lab-check` first rewrites the
//! tutorial's quoted blocks from the sources.

use std::fs;
use std::sync::OnceLock;

use lab_check::commands::{self, Known};
use lab_check::markdown::Doc;
use lab_check::workspace::{Member, Workspace};
use lab_check::{Problem, assert_none, layout, map, parents, snippets};
use lab_check::{order, step_lists, titles};

/// The workspace, read once by `cargo metadata` for all the tests.
fn workspace() -> &'static Workspace {
    static WORKSPACE: OnceLock<Workspace> = OnceLock::new();
    WORKSPACE.get_or_init(|| {
        let root = lab_check::workspace_root();
        Workspace::load(&root).unwrap_or_else(|problems| {
            assert_none("reading the workspace", &problems);
            unreachable!("assert_none panics on problems")
        })
    })
}

/// A file of the workspace, by its path from the root.
fn read(file: &str) -> Result<String, Problem> {
    fs::read_to_string(workspace().root.join(file))
        .map_err(|err| Problem::new(file, 0, format!("cannot read: {err}")))
}

fn doc(file: &str) -> Doc {
    Doc::parse(&read(file).unwrap_or_else(|problem| panic!("{problem}")))
}

/// Each step with the text of its `src/lib.rs`, and what could not be
/// read.
fn step_libs() -> (Vec<(&'static Member, String)>, Vec<Problem>) {
    let (mut found, mut problems) = (Vec::new(), Vec::new());
    for step in workspace().steps() {
        match read(&step.lib_rs_path()) {
            Ok(text) => found.push((step, text)),
            Err(problem) => problems.push(problem),
        }
    }
    (found, problems)
}

#[test]
fn tutorial_snippets_match_their_sources() {
    let root = workspace().root.as_path();
    let sources = |path: &str| fs::read_to_string(root.join(path)).ok();
    let mut tutorial = read("tutorial.md").expect("tutorial.md is readable");
    if std::env::var("LAB_BLESS").is_ok_and(|value| value == "1") {
        match snippets::bless(&tutorial, &sources) {
            Ok(blessed) if blessed != tutorial => {
                fs::write(root.join("tutorial.md"), &blessed)
                    .expect("tutorial.md is writable");
                eprintln!("LAB_BLESS: rewrote the quoted blocks");
                tutorial = blessed;
            }
            Ok(_) => {}
            Err(problems) => assert_none("LAB_BLESS on tutorial.md", &problems),
        }
    }
    let problems = snippets::check("tutorial.md", &tutorial, &sources);
    assert_none("quoted code in tutorial.md", &problems);
}

#[test]
fn every_anchor_in_the_sources_is_closed() {
    let mut problems = Vec::new();
    for file in workspace().rust_files() {
        match read(&file) {
            Ok(source) => problems.extend(snippets::anchors(&file, &source).1),
            Err(problem) => problems.push(problem),
        }
    }
    assert_none("anchors in the sources", &problems);
}

#[test]
fn commands_in_the_docs_name_real_binaries_packages_and_scripts() {
    let ws = workspace();
    let known = Known {
        bins: ws.bins(),
        packages: ws.packages(),
        scripts: ws.scripts(),
    };
    let mut problems = Vec::new();
    for file in ["README.md", "tutorial.md"] {
        problems.extend(commands::check(file, &doc(file), &known));
    }
    assert_none("commands named in README.md and tutorial.md", &problems);
}

#[test]
fn every_step_has_a_chapter_with_its_title() {
    let (libs, mut problems) = step_libs();
    let mut steps = Vec::new();
    for (step, text) in libs {
        match titles::step_title(step, &text) {
            Ok(title) => steps.push((step, title)),
            Err(problem) => problems.push(problem),
        }
    }
    problems.extend(titles::check("tutorial.md", &doc("tutorial.md"), &steps));
    assert_none("step titles and tutorial chapters", &problems);
}

#[test]
fn each_step_header_names_its_recorded_parent() {
    let (libs, mut problems) = step_libs();
    problems.extend(parents::check(&libs));
    assert_none("steps' parents and their headers", &problems);
}

#[test]
fn the_docs_list_every_step_in_order() {
    let steps = workspace().steps();
    let mut problems = Vec::new();
    for file in ["README.md", "tutorial.md"] {
        problems.extend(step_lists::check(file, &doc(file), &steps));
    }
    assert_none("tables of steps in README.md and tutorial.md", &problems);
}

#[test]
fn steps_follow_the_layout() {
    let ws = workspace();
    assert!(!ws.steps().is_empty(), "no members under steps/");
    assert_none("workspace layout", &layout::check(&ws.members));
}

#[test]
fn the_tutorial_has_its_map() {
    let tutorial = read("tutorial.md").expect("tutorial.md is readable");
    let steps = workspace().steps();
    let problems = map::check("tutorial.md", &tutorial, &steps);
    assert_none(
        "the map of tutorial.md (contents, map lines, recaps)",
        &problems,
    );
}

#[test]
fn no_quote_uses_an_item_a_later_chapter_introduces() {
    let tutorial = read("tutorial.md").expect("tutorial.md is readable");
    let file = order::EXCEPTIONS;
    let text = read(file).unwrap_or_default();
    let exceptions =
        order::exceptions(file, &text).unwrap_or_else(|problems| {
            assert_none("the exceptions to the order of quotes", &problems);
            unreachable!("assert_none panics on problems")
        });
    let problems = order::check("tutorial.md", &tutorial, file, &exceptions);
    assert_none("quotes that use what a later chapter introduces", &problems);
}

#[test]
fn tutorial_diffs_match_their_sources() {
    let root = workspace().root.as_path();
    let sources = |path: &str| fs::read_to_string(root.join(path)).ok();
    let tutorial = read("tutorial.md").expect("tutorial.md is readable");
    let problems = lab_check::diffs::check("tutorial.md", &tutorial, &sources);
    assert_none("diffs quoted in tutorial.md", &problems);
}

#[test]
fn steps_02_to_08_show_little_code_shown_before() {
    use lab_check::repetition;
    let tutorial = read("tutorial.md").expect("tutorial.md is readable");
    let (figure, counts, problems) =
        repetition::check("tutorial.md", &tutorial);
    println!("Rust in steps 02 to 08 shown before: {figure}");
    for count in &counts {
        let one = repetition::Figure::of(std::slice::from_ref(count));
        println!("  {}: {one}", count.chapter);
        for (line, text) in &count.repeated {
            println!("    tutorial.md:{line}: {text}");
        }
    }
    assert_none("Rust repeated in steps 02 to 08", &problems);
}

#[test]
fn every_chapter_has_a_whole_exercise() {
    use lab_check::exercises::{self, Solution};
    let root = workspace().root.as_path();
    let mut solutions = Vec::new();
    let entries = fs::read_dir(root.join("solutions")).expect("solutions/");
    for entry in entries {
        let path = entry.expect("a file in solutions/").path();
        let Some(id) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        if path.extension().is_some_and(|e| e == "patch") {
            let patch = fs::read_to_string(&path).expect("a readable patch");
            solutions.push(Solution::parse(id, &patch));
        }
    }
    let mut tests = Vec::new();
    for member in &workspace().members {
        let dir = root.join(&member.dir).join("tests");
        let mut files = vec![dir.join("exercises.rs")];
        if let Ok(entries) = fs::read_dir(dir.join("exercises")) {
            files.extend(entries.filter_map(|e| e.ok().map(|e| e.path())));
        }
        for file in files {
            if let Ok(source) = fs::read_to_string(&file) {
                tests.extend(exercises::tests_in(&member.package, &source));
            }
        }
    }
    let tutorial = read("tutorial.md").expect("tutorial.md is readable");
    let problems = exercises::check(&tutorial, &solutions, &tests);
    assert_none("the exercises", &problems);
}

/// Step 09 teaches one idea, requests rather than connections: its
/// chapter stays at most this long, and the rules of the middle live in
/// the appendix.
const STEP_09_MOST_LINES: usize = 450;

#[test]
fn step_09_keeps_to_its_idea() {
    let tutorial = read("tutorial.md").expect("tutorial.md is readable");
    let lines: Vec<&str> = tutorial.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.starts_with("## Step 09 "))
        .expect("a chapter for step 09");
    let end = lines[start + 1..]
        .iter()
        .position(|l| l.starts_with("## "))
        .map_or(lines.len(), |at| start + 1 + at);
    assert!(
        end - start <= STEP_09_MOST_LINES,
        "tutorial.md:{}: step 09's chapter is {} lines, over {}: move what \
         is not its idea to «Appendix — The rules of the middle»",
        start + 1,
        end - start,
        STEP_09_MOST_LINES
    );
}
