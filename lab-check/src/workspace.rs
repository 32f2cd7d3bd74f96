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
    /// Whether `src/main.rs` is a binary named after the package because
    /// no `[[bin]]` claims it.
    pub implicit_bin: bool,
    /// Whether the manifest says `[lints] workspace = true`.
    pub workspace_lints: bool,
}

impl Member {
    /// Reads a member's manifest. `has_main_rs`: whether `src/main.rs`
    /// exists next to it.
    pub fn parse(
        dir: &str,
        manifest: &str,
        has_main_rs: bool,
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
        let mut main_rs_claimed = false;
        let bins = table.get("bin").and_then(Value::as_array);
        for bin in bins.into_iter().flatten() {
            let name = bin
                .get("name")
                .and_then(Value::as_str)
                .ok_or("has a [[bin]] without a name")?;
            let path = bin.get("path").and_then(Value::as_str);
            // Cargo infers src/main.rs for a bin named after the package.
            if path == Some("src/main.rs")
                || (path.is_none() && name == package)
            {
                main_rs_claimed = true;
            }
            explicit_bins.push(name.to_owned());
        }
        let autobins = table
            .get("package")
            .and_then(|package| package.get("autobins"))
            .and_then(Value::as_bool)
            .unwrap_or(true);
        let workspace_lints = table
            .get("lints")
            .and_then(|lints| lints.get("workspace"))
            .and_then(Value::as_bool)
            == Some(true);
        Ok(Member {
            dir: dir.to_owned(),
            package,
            explicit_bins,
            implicit_bin: has_main_rs && autobins && !main_rs_claimed,
            workspace_lints,
        })
    }

    /// Every binary `cargo run --bin` accepts for this member.
    pub fn bins(&self) -> Vec<&str> {
        let mut bins: Vec<&str> =
            self.explicit_bins.iter().map(String::as_str).collect();
        if self.implicit_bin {
            bins.push(&self.package);
        }
        bins
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
                    let main_rs = root.join(&dir).join("src/main.rs");
                    Member::parse(&dir, &manifest, main_rs.is_file())
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
            Member::parse("steps/04-round-robin", manifest, true).unwrap();
        assert_eq!(member.package, "step-04-round-robin");
        assert_eq!(member.bins(), ["04-round-robin"]);
        assert!(member.workspace_lints);
    }

    #[test]
    fn an_implicit_bin_is_named_after_the_package() {
        let manifest = "[package]\nname = \"dummy-servers\"\n";
        let member = Member::parse("dummy-servers", manifest, true).unwrap();
        assert_eq!(member.bins(), ["dummy-servers"]);
        assert!(!member.workspace_lints);
        let library = Member::parse("lab-common", manifest, false).unwrap();
        assert!(library.bins().is_empty());
    }

    #[test]
    fn a_broken_manifest_is_an_error() {
        assert!(Member::parse("x", "[package", true).is_err());
        assert!(Member::parse("x", "[package]\n", true).is_err());
    }
}
