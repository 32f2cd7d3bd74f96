//! The checks of `lab-check`, run on the real README.md, tutorial.md and
//! workspace. `LAB_BLESS=1 cargo test -p lab-check` first rewrites the
//! tutorial's quoted blocks from the sources.

use std::fs;
use std::path::Path;

use lab_check::commands::{self, Known};
use lab_check::workspace::Workspace;
use lab_check::{Problem, assert_none, layout, snippets, titles};

fn workspace() -> Workspace {
    let root = lab_check::workspace_root();
    Workspace::load(&root).unwrap_or_else(|problems| {
        assert_none("reading the workspace manifests", &problems);
        unreachable!("assert_none panics on problems")
    })
}

fn read(root: &Path, file: &str) -> String {
    fs::read_to_string(root.join(file))
        .unwrap_or_else(|err| panic!("cannot read {file}: {err}"))
}

fn blessing() -> bool {
    std::env::var("LAB_BLESS").is_ok_and(|value| value == "1")
}

#[test]
fn tutorial_snippets_match_their_sources() {
    let ws = workspace();
    let root = ws.root.as_path();
    let sources = |path: &str| fs::read_to_string(root.join(path)).ok();
    let mut tutorial = read(root, "tutorial.md");
    if blessing() {
        match snippets::bless(&tutorial, &sources) {
            Ok(blessed) => {
                if blessed != tutorial {
                    fs::write(root.join("tutorial.md"), &blessed)
                        .expect("tutorial.md is writable");
                    eprintln!("LAB_BLESS: rewrote the quoted blocks");
                }
                tutorial = blessed;
            }
            Err(problems) => assert_none("LAB_BLESS on tutorial.md", &problems),
        }
    }
    let problems = snippets::check("tutorial.md", &tutorial, &sources);
    assert_none("quoted code in tutorial.md", &problems);
}

#[test]
fn every_anchor_in_the_sources_is_closed() {
    let ws = workspace();
    let mut problems = Vec::new();
    for file in ws.rust_files() {
        let source = read(&ws.root, &file);
        problems.extend(snippets::anchors(&file, &source).1);
    }
    assert_none("anchors in the sources", &problems);
}

#[test]
fn commands_in_the_docs_name_real_binaries_packages_and_scripts() {
    let ws = workspace();
    let known = Known {
        bins: ws.bins().into_iter().map(str::to_owned).collect(),
        packages: ws.packages().into_iter().map(str::to_owned).collect(),
        scripts: ws.scripts(),
    };
    let mut problems = Vec::new();
    for file in ["README.md", "tutorial.md"] {
        let text = read(&ws.root, file);
        problems.extend(commands::check(file, &text, &known));
    }
    assert_none("commands named in README.md and tutorial.md", &problems);
}

#[test]
fn every_step_has_a_chapter_with_its_title() {
    let ws = workspace();
    let mut problems: Vec<Problem> = Vec::new();
    let mut steps = Vec::new();
    for step in ws.steps() {
        let lib = format!("{}/src/lib.rs", step.dir);
        let Ok(text) = fs::read_to_string(ws.root.join(&lib)) else {
            problems.push(Problem::new(
                lib,
                0,
                "missing: a step's lesson lives in its src/lib.rs",
            ));
            continue;
        };
        match titles::step_title(&step.dir, &text) {
            Ok(title) => steps.push(title),
            Err(problem) => problems.push(problem),
        }
    }
    let tutorial = read(&ws.root, "tutorial.md");
    problems.extend(titles::check("tutorial.md", &tutorial, &steps));
    assert_none("step titles and tutorial chapters", &problems);
}

#[test]
fn steps_follow_the_layout() {
    let ws = workspace();
    assert!(!ws.steps().is_empty(), "no members under steps/");
    assert_none("workspace layout", &layout::check(&ws.members));
}
