//! The workspace as its manifests declare it: members, packages, binaries.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use toml::{Table, Value};

use crate::Problem;

/// One workspace member, read from its `Cargo.toml`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Relative to the workspace root, with `/`: `steps/04-round-robin`.
    pub dir: String,
    pub package: String,
    /// The names of its `[[bin]]` tables.
    pub explicit_bins: Vec<String>,
    /// The binaries Cargo finds by itself and no `[[bin]]` overrides:
    /// `src/main.rs`, named after the package, and `src/bin/NAME.rs` or
    /// `src/bin/NAME/main.rs`, named NAME.
    pub implicit_bins: Vec<String>,
    /// Whether the manifest says `[lints] workspace = true`.
    pub workspace_lints: bool,
}

impl Member {
    /// Reads a member's manifest. `bin_sources`: the binary sources that
    /// exist in the member, relative to it (`src/main.rs`,
    /// `src/bin/gen-certs.rs`), from which Cargo infers binaries.
    pub fn parse(
        dir: &str,
        manifest: &str,
        bin_sources: &[&str],
    ) -> Result<Member, String> {
        let table: Table = manifest
            .parse()
            .map_err(|err| format!("is not valid TOML: {err}"))?;
        let package = table
            .get("package")
            .and_then(|package| package.get("name"))
            .and_then(Value::as_str)
            .ok_or("has no [package] name")?
            .to_owned();
        let mut explicit_bins = Vec::new();
        let mut explicit_paths = Vec::new();
        let bins = table.get("bin").and_then(Value::as_array);
        for bin in bins.into_iter().flatten() {
            let name = bin
                .get("name")
                .and_then(Value::as_str)
                .ok_or("has a [[bin]] without a name")?;
            if let Some(path) = bin.get("path").and_then(Value::as_str) {
                explicit_paths.push(path.to_owned());
            }
            explicit_bins.push(name.to_owned());
        }
        let autobins = table
            .get("package")
            .and_then(|package| package.get("autobins"))
            .and_then(Value::as_bool)
            .unwrap_or(true);
        let mut implicit_bins = Vec::new();
        for &source in bin_sources.iter().filter(|_| autobins) {
            let name = match source {
                "src/main.rs" => Some(package.as_str()),
                _ => source.strip_prefix("src/bin/").and_then(|rest| {
                    rest.strip_suffix("/main.rs")
                        .or_else(|| rest.strip_suffix(".rs"))
                        .filter(|name| !name.contains('/'))
                }),
            };
            // A [[bin]] of the same name or path replaces the inferred one.
            if let Some(name) = name
                && !explicit_bins.iter().any(|bin| bin == name)
                && !explicit_paths.iter().any(|path| path == source)
            {
                implicit_bins.push(name.to_owned());
            }
        }
        let workspace_lints = table
            .get("lints")
            .and_then(|lints| lints.get("workspace"))
            .and_then(Value::as_bool)
            == Some(true);
        Ok(Member {
            dir: dir.to_owned(),
            package,
            explicit_bins,
            implicit_bins,
            workspace_lints,
        })
    }

    /// Every binary `cargo run --bin` accepts for this member.
    pub fn bins(&self) -> Vec<&str> {
        self.explicit_bins
            .iter()
            .chain(&self.implicit_bins)
            .map(String::as_str)
            .collect()
    }

    /// `steps/04-round-robin/Cargo.toml`.
    pub fn manifest_path(&self) -> String {
        format!("{}/Cargo.toml", self.dir)
    }
}

/// The members of the workspace at `root`.
#[derive(Clone, Debug)]
pub struct Workspace {
    pub root: PathBuf,
    pub members: Vec<Member>,
}

impl Workspace {
    /// Reads `root/Cargo.toml` and every member's manifest. Member globs
    /// may only be of the form `dir/*`, which is all the lab uses.
    pub fn load(root: &Path) -> Result<Workspace, Vec<Problem>> {
        let text =
            fs::read_to_string(root.join("Cargo.toml")).map_err(|err| {
                vec![Problem::new("Cargo.toml", 0, err.to_string())]
            })?;
        let dirs = member_dirs(root, &text)?;
        let mut members = Vec::new();
        let mut problems = Vec::new();
        for dir in dirs {
            let manifest_path = format!("{dir}/Cargo.toml");
            let parsed = fs::read_to_string(root.join(&manifest_path))
                .map_err(|err| err.to_string())
                .and_then(|manifest| {
                    let sources = bin_sources(&root.join(&dir));
                    let sources: Vec<&str> =
                        sources.iter().map(String::as_str).collect();
                    Member::parse(&dir, &manifest, &sources)
                });
            match parsed {
                Ok(member) => members.push(member),
                Err(err) => {
                    problems.push(Problem::new(manifest_path, 0, err));
                }
            }
        }
        if problems.is_empty() {
            Ok(Workspace {
                root: root.to_path_buf(),
                members,
            })
        } else {
            Err(problems)
        }
    }

    pub fn packages(&self) -> BTreeSet<&str> {
        self.members.iter().map(|m| m.package.as_str()).collect()
    }

    pub fn bins(&self) -> BTreeSet<&str> {
        self.members.iter().flat_map(Member::bins).collect()
    }

    /// The members under `steps/`, in folder order.
    pub fn steps(&self) -> Vec<&Member> {
        self.members
            .iter()
            .filter(|member| member.dir.starts_with("steps/"))
            .collect()
    }

    /// The `*.sh` files of `scripts/`, as `name.sh`.
    pub fn scripts(&self) -> BTreeSet<String> {
        let Ok(entries) = fs::read_dir(self.root.join("scripts")) else {
            return BTreeSet::new();
        };
        entries
            .filter_map(Result::ok)
            .filter(|entry| entry.path().is_file())
            .filter_map(|entry| entry.file_name().into_string().ok())
            .filter(|name| name.ends_with(".sh"))
            .collect()
    }

    /// Every `.rs` file under the members' folders (no `target/`), as a
    /// path relative to the root.
    pub fn rust_files(&self) -> Vec<String> {
        let mut files = Vec::new();
        for member in &self.members {
            collect_rs(&self.root, &self.root.join(&member.dir), &mut files);
        }
        files.sort();
        files
    }
}

/// The files of `member` Cargo would infer binaries from.
fn bin_sources(member: &Path) -> Vec<String> {
    let mut found = Vec::new();
    if member.join("src/main.rs").is_file() {
        found.push("src/main.rs".to_owned());
    }
    let Ok(entries) = fs::read_dir(member.join("src/bin")) else {
        return found;
    };
    for entry in entries.filter_map(Result::ok) {
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let path = entry.path();
        if path.is_file() && name.ends_with(".rs") {
            found.push(format!("src/bin/{name}"));
        } else if path.join("main.rs").is_file() {
            found.push(format!("src/bin/{name}/main.rs"));
        }
    }
    found.sort();
    found
}

fn collect_rs(root: &Path, dir: &Path, files: &mut Vec<String>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        if path.is_dir() {
            if entry.file_name() != "target" {
                collect_rs(root, &path, files);
            }
        } else if path.extension().is_some_and(|ext| ext == "rs")
            && let Ok(relative) = path.strip_prefix(root)
        {
            files.push(relative.to_string_lossy().replace('\\', "/"));
        }
    }
}

/// The member folders `[workspace] members` names, globs expanded to the
/// folders that hold a `Cargo.toml`, minus `[workspace] exclude`.
fn member_dirs(
    root: &Path,
    manifest: &str,
) -> Result<Vec<String>, Vec<Problem>> {
    let fail = |message: String| vec![Problem::new("Cargo.toml", 0, message)];
    let table: Table = manifest
        .parse()
        .map_err(|err| fail(format!("is not valid TOML: {err}")))?;
    let workspace = table
        .get("workspace")
        .ok_or_else(|| fail("has no [workspace]".into()))?;
    let list = |key: &str| -> Vec<String> {
        workspace
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect()
    };
    let exclude = list("exclude");
    let mut dirs = Vec::new();
    for pattern in list("members") {
        if let Some(parent) = pattern.strip_suffix("/*") {
            if parent.contains(['*', '?', '[']) {
                return Err(fail(format!(
                    "member glob `{pattern}`: only `dir/*` is supported"
                )));
            }
            let entries = fs::read_dir(root.join(parent)).map_err(|err| {
                fail(format!("member glob `{pattern}`: {err}"))
            })?;
            let mut found: Vec<String> = entries
                .filter_map(Result::ok)
                .filter(|entry| entry.path().join("Cargo.toml").is_file())
                .filter_map(|entry| entry.file_name().into_string().ok())
                .map(|name| format!("{parent}/{name}"))
                .collect();
            found.sort();
            dirs.extend(found);
        } else if pattern.contains(['*', '?', '[']) {
            return Err(fail(format!(
                "member glob `{pattern}`: only `dir/*` is supported"
            )));
        } else {
            dirs.push(pattern);
        }
    }
    dirs.retain(|dir| !exclude.contains(dir));
    Ok(dirs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_manifest_declares_its_bin() {
        let manifest = "[package]\nname = \"step-04-round-robin\"\n\
            [[bin]]\nname = \"04-round-robin\"\npath = \"src/main.rs\"\n\
            [lints]\nworkspace = true\n";
        let member =
            Member::parse("steps/04-round-robin", manifest, &["src/main.rs"])
                .unwrap();
        assert_eq!(member.package, "step-04-round-robin");
        assert_eq!(member.bins(), ["04-round-robin"]);
        assert!(member.workspace_lints);
    }

    #[test]
    fn an_implicit_bin_is_named_after_the_package() {
        let manifest = "[package]\nname = \"dummy-servers\"\n";
        let member =
            Member::parse("dummy-servers", manifest, &["src/main.rs"]).unwrap();
        assert_eq!(member.bins(), ["dummy-servers"]);
        assert!(!member.workspace_lints);
        let library = Member::parse("lab-common", manifest, &[]).unwrap();
        assert!(library.bins().is_empty());
    }

    #[test]
    fn bins_in_src_bin_are_named_after_their_file() {
        let manifest = "[package]\nname = \"lab-common\"\n";
        let sources = ["src/bin/gen-certs.rs", "src/bin/tool/main.rs"];
        let member = Member::parse("lab-common", manifest, &sources).unwrap();
        assert_eq!(member.bins(), ["gen-certs", "tool"]);
        let off = "[package]\nname = \"x\"\nautobins = false\n";
        assert!(Member::parse("x", off, &sources).unwrap().bins().is_empty());
    }

    #[test]
    fn an_explicit_bin_replaces_the_inferred_one() {
        let manifest = "[package]\nname = \"step-01-ping\"\n\
            [[bin]]\nname = \"01-ping\"\npath = \"src/main.rs\"\n";
        let member =
            Member::parse("steps/01-ping", manifest, &["src/main.rs"]).unwrap();
        assert_eq!(member.bins(), ["01-ping"]);
    }

    #[test]
    fn a_broken_manifest_is_an_error() {
        assert!(Member::parse("x", "[package", &[]).is_err());
        assert!(Member::parse("x", "[package]\n", &[]).is_err());
    }
}
