//! The workspace as Cargo sees it, through `cargo metadata`: members,
//! their packages and binaries, and each step's recorded parent.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use cargo_metadata::{MetadataCommand, Package, TargetKind};

use crate::Problem;

/// One workspace member.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Member {
    /// Relative to the workspace root, with `/`: `steps/04-round-robin`.
    pub dir: String,
    pub package: String,
    /// What `cargo run --bin` accepts for it.
    pub bins: Vec<String>,
    /// `[package.metadata.lab] parent`: the package of the step this one
    /// changes.
    pub parent: Option<String>,
    /// Whether the manifest says `[lints] workspace = true` (which `cargo
    /// metadata` does not report, so it is read from the manifest).
    pub workspace_lints: bool,
}

impl Member {
    /// Reads what `cargo metadata` says of `package`, and the manifest for
    /// the lints. `dir`: the member's folder, relative to the root.
    fn new(dir: String, package: &Package) -> Result<Member, String> {
        let parent = match package.metadata.pointer("/lab/parent") {
            None => None,
            Some(parent) => {
                Some(parent.as_str().map(str::to_owned).ok_or(format!(
                    "[package.metadata.lab] parent is `{parent}`; write the \
                     parent step's package name in quotes"
                ))?)
            }
        };
        let manifest = fs::read_to_string(&package.manifest_path);
        let manifest: toml::Table = manifest
            .map_err(|err| err.to_string())?
            .parse()
            .map_err(|err| format!("{err}"))?;
        let lints = manifest
            .get("lints")
            .and_then(|lints| lints.get("workspace"));
        let bins = package
            .targets
            .iter()
            .filter(|t| t.is_kind(TargetKind::Bin));
        let mut bins: Vec<String> = bins.map(|t| t.name.clone()).collect();
        bins.sort();
        Ok(Member {
            dir,
            package: package.name.to_string(),
            bins,
            parent,
            workspace_lints: lints.and_then(toml::Value::as_bool) == Some(true),
        })
    }

    /// `steps/04-round-robin/Cargo.toml`.
    pub fn manifest_path(&self) -> String {
        format!("{}/Cargo.toml", self.dir)
    }

    /// `steps/04-round-robin/src/lib.rs`: a step's lesson.
    pub fn lib_rs_path(&self) -> String {
        format!("{}/src/lib.rs", self.dir)
    }

    /// `04-round-robin`: the last part of its folder.
    pub fn folder(&self) -> &str {
        self.dir.rsplit('/').next().unwrap_or(&self.dir)
    }

    /// `04`: what its folder starts with, before the first `-`.
    pub fn number(&self) -> &str {
        let folder = self.folder();
        folder.split('-').next().unwrap_or(folder)
    }
}

/// The members of the workspace at `root`, in folder order.
#[derive(Clone, Debug)]
pub struct Workspace {
    pub root: PathBuf,
    pub members: Vec<Member>,
}

impl Workspace {
    /// Runs `cargo metadata` (no dependencies: offline, and quick) on the
    /// workspace at `root`.
    pub fn load(root: &Path) -> Result<Workspace, Vec<Problem>> {
        let metadata = MetadataCommand::new()
            .manifest_path(root.join("Cargo.toml"))
            .no_deps()
            .exec()
            .map_err(|err| {
                let message = format!("`cargo metadata` failed: {err}");
                vec![Problem::new("Cargo.toml", 0, message)]
            })?;
        let root = &metadata.workspace_root;
        let mut members = Vec::new();
        let mut problems = Vec::new();
        for package in metadata.workspace_packages() {
            let manifest = package.manifest_path.strip_prefix(root);
            let manifest = manifest.unwrap_or(&package.manifest_path);
            let dir = manifest.parent().map_or("", |dir| dir.as_str());
            match Member::new(dir.to_owned(), package) {
                Ok(member) => members.push(member),
                Err(err) => {
                    problems.push(Problem::new(manifest.as_str(), 0, err));
                }
            }
        }
        members.sort_by(|a, b| a.dir.cmp(&b.dir));
        let root = root.clone().into_std_path_buf();
        if problems.is_empty() {
            Ok(Workspace { root, members })
        } else {
            Err(problems)
        }
    }

    pub fn packages(&self) -> BTreeSet<String> {
        self.members.iter().map(|m| m.package.clone()).collect()
    }

    pub fn bins(&self) -> BTreeSet<String> {
        self.members.iter().flat_map(|m| m.bins.clone()).collect()
    }

    /// The members under `steps/`, in folder order.
    pub fn steps(&self) -> Vec<&Member> {
        self.members
            .iter()
            .filter(|member| member.dir.starts_with("steps/"))
            .collect()
    }

    /// Every file under `scripts/`, relative to it: `demo.sh`,
    /// `lib/lab.sh`.
    pub fn scripts(&self) -> BTreeSet<String> {
        let scripts = self.root.join("scripts");
        let mut files = Vec::new();
        collect_files(&scripts, &scripts, &|_| true, &mut files);
        files.into_iter().collect()
    }

    /// Every `.rs` file under the members' folders (no `target/`), as a
    /// path relative to the root.
    pub fn rust_files(&self) -> Vec<String> {
        let is_rust = |path: &Path| path.extension().is_some_and(|e| e == "rs");
        let mut files = Vec::new();
        for member in &self.members {
            let dir = self.root.join(&member.dir);
            collect_files(&self.root, &dir, &is_rust, &mut files);
        }
        files.sort();
        files
    }
}

/// The files under `dir` that `keep` accepts, relative to `root`, with
/// `/`. Skips `target/` folders.
fn collect_files(
    root: &Path,
    dir: &Path,
    keep: &dyn Fn(&Path) -> bool,
    files: &mut Vec<String>,
) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        if path.is_dir() {
            if entry.file_name() != "target" {
                collect_files(root, &path, keep, files);
            }
        } else if keep(&path)
            && let Ok(relative) = path.strip_prefix(root)
        {
            files.push(relative.to_string_lossy().replace('\\', "/"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `files` (path, text) under a new temporary folder.
    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("a temporary folder");
        for (path, text) in files {
            let path = dir.path().join(path);
            fs::create_dir_all(path.parent().expect("a file in a folder"))
                .expect("can create folders");
            fs::write(path, text).expect("can write files");
        }
        dir
    }

    /// A workspace manifest with these members.
    fn root(members: &str) -> String {
        format!(
            "[workspace]\nmembers = [{members}]\n\
             [workspace.lints.rust]\nunsafe_code = \"forbid\"\n"
        )
    }

    fn package(name: &str, rest: &str) -> String {
        format!(
            "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\n\
             edition = \"2021\"\n{rest}"
        )
    }

    #[test]
    fn reads_binaries_and_parents_as_cargo_does() {
        let step_01 = "[[bin]]\nname = \"01-a\"\npath = \"src/main.rs\"\n\
                       [lints]\nworkspace = true\n";
        let step_02 = "[package.metadata.lab]\nparent = \"step-01-a\"\n";
        let main = "fn main() {}\n";
        let dir = tree(&[
            ("Cargo.toml", &root("\"steps/*\", \"tool\"")),
            ("steps/01-a/Cargo.toml", &package("step-01-a", step_01)),
            ("steps/01-a/src/main.rs", main),
            ("steps/02-b/Cargo.toml", &package("step-02-b", step_02)),
            ("steps/02-b/src/main.rs", main),
            ("steps/02-b/src/bin/extra.rs", main),
            ("tool/Cargo.toml", &package("tool", "")),
            ("tool/src/lib.rs", ""),
            ("scripts/lib/x.sh", ""),
        ]);
        let ws = Workspace::load(dir.path()).expect("a valid workspace");
        let found: Vec<_> = ws
            .members
            .iter()
            .map(|m| {
                (
                    m.dir.as_str(),
                    m.package.as_str(),
                    m.bins.join(" "),
                    m.parent.as_deref(),
                    m.workspace_lints,
                )
            })
            .collect();
        assert_eq!(
            found,
            [
                ("steps/01-a", "step-01-a", "01-a".to_owned(), None, true),
                (
                    "steps/02-b",
                    "step-02-b",
                    "extra step-02-b".to_owned(),
                    Some("step-01-a"),
                    false
                ),
                ("tool", "tool", String::new(), None, false),
            ]
        );
        assert_eq!(ws.steps().len(), 2);
        assert_eq!(ws.scripts().into_iter().collect::<Vec<_>>(), ["lib/x.sh"]);
        assert_eq!(ws.rust_files().len(), 4);
    }

    #[test]
    fn a_parent_that_is_not_a_name_or_a_broken_manifest_fails() {
        let tool = package("tool", "[package.metadata.lab]\nparent = 3\n");
        let dir = tree(&[
            ("Cargo.toml", &root("\"tool\"")),
            ("tool/Cargo.toml", &tool),
            ("tool/src/lib.rs", ""),
        ]);
        let problems = Workspace::load(dir.path()).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].file, "tool/Cargo.toml");
        assert!(problems[0].message.contains("parent is `3`"));
        fs::write(dir.path().join("Cargo.toml"), "[workspace\n").unwrap();
        let problems = Workspace::load(dir.path()).unwrap_err();
        assert!(problems[0].message.contains("`cargo metadata` failed"));
    }
}
