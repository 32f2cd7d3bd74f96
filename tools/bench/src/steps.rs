//! The lab's steps as Cargo records them: every workspace member under
//! `steps/`, in folder order, with the step it changes (its `parent`) and
//! how the scripts run it, both from `[package.metadata.lab]` in its
//! `Cargo.toml`. The scripts (through `lab-steps`) and the benchmark read
//! the steps from here; lab-check reads the same tables through `cargo
//! metadata` on its own, to report every problem it finds rather than
//! stop at the first. A new step folder needs no edit anywhere else.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use cargo_metadata::{Metadata, MetadataCommand, Package};
use serde::Deserialize;

/// One step, e.g. `steps/06-tls-front`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// The folder's name, `06-tls-front`; also its binary's name.
    pub folder: String,
    /// The package, `step-06-tls-front`.
    pub package: String,
    /// The binary that runs it.
    pub bin: String,
    /// The folder of the step it changes (`04-round-robin`), if any.
    pub parent: Option<String>,
    pub demo: Demo,
}

/// `[package.metadata.lab.demo]`: what scripts/demo.sh and
/// scripts/compare.sh need to run a step and say what it teaches.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Demo {
    /// A few words: compare.sh's column and demo.sh's heading.
    pub teaches: String,
    /// 4 (copies bytes) or 7 (reads HTTP requests).
    pub layer: u8,
    /// `http` or `https`: what a client speaks to the step.
    pub front: String,
    /// One word per backend it forwards to: `plain` or `tls`.
    pub backends: Vec<String>,
    /// The flags after the binary, with `{listen}`, `{backends}` (the
    /// addresses, comma-separated), `{servers}` (the same, each TLS one
    /// written `tls://HOST:PORT`) and `{seed}` filled in by the script.
    pub args: Vec<String>,
}

impl Default for Demo {
    fn default() -> Demo {
        Demo {
            teaches: "a load balancer".into(),
            layer: 4,
            front: "http".into(),
            backends: vec!["plain".into(); 3],
            args: ["--listen", "{listen}", "--backends", "{backends}"]
                .map(String::from)
                .to_vec(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
struct LabMetadata {
    parent: Option<String>,
    #[serde(default)]
    demo: Demo,
}

impl Step {
    /// The two digits that open the folder's name: `06`.
    pub fn number(&self) -> &str {
        self.folder.split('-').next().unwrap_or(&self.folder)
    }

    /// True if `name` names this step: `06`, `6`, `06-tls-front`,
    /// `steps/06-tls-front/` or `step-06-tls-front`.
    pub fn is_named(&self, name: &str) -> bool {
        let name = name.trim_end_matches('/');
        let name = name.strip_prefix("steps/").unwrap_or(name);
        name == self.folder
            || name == self.package
            || name == self.number()
            || (name.len() == 1 && format!("0{name}") == self.number())
    }
}

/// Reads the steps of the workspace whose root is `root` (runs `cargo
/// metadata --no-deps`).
pub fn load(root: &Path) -> Result<Vec<Step>, String> {
    let metadata = MetadataCommand::new()
        .current_dir(root)
        .no_deps()
        .exec()
        .map_err(|err| format!("cargo metadata: {err}"))?;
    from_metadata(&metadata)
}

/// The steps among the workspace's members, sorted by folder.
pub fn from_metadata(metadata: &Metadata) -> Result<Vec<Step>, String> {
    let steps_dir = metadata.workspace_root.join("steps");
    let members: Vec<&Package> = metadata.workspace_packages();
    let mut found = Vec::new();
    for package in members {
        let dir = package
            .manifest_path
            .parent()
            .expect("a manifest is in a folder");
        if dir.parent() != Some(steps_dir.as_path()) {
            continue;
        }
        let folder = dir.file_name().expect("a step folder has a name");
        let lab: LabMetadata = match package.metadata.get("lab") {
            Some(value) => {
                serde_json::from_value(value.clone()).map_err(|err| {
                    format!("{}: [package.metadata.lab]: {err}", dir)
                })?
            }
            None => LabMetadata::default(),
        };
        let bin = package
            .targets
            .iter()
            .find(|target| target.is_bin())
            .map(|target| target.name.clone())
            .ok_or_else(|| format!("{}: the step has no binary", dir))?;
        found.push((folder.to_owned(), package.name.to_string(), bin, lab));
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    let folder_of: HashMap<&str, &str> = found
        .iter()
        .map(|(folder, package, ..)| (package.as_str(), folder.as_str()))
        .collect();
    let mut steps = Vec::new();
    for (folder, package, bin, lab) in &found {
        let parent = match &lab.parent {
            None => None,
            Some(name) => Some(
                folder_of
                    .get(name.as_str())
                    .ok_or_else(|| {
                        format!(
                            "steps/{folder}/Cargo.toml: parent \"{name}\" \
                             is not a step's package"
                        )
                    })?
                    .to_string(),
            ),
        };
        steps.push(Step {
            folder: folder.clone(),
            package: package.clone(),
            bin: bin.clone(),
            parent,
            demo: lab.demo.clone(),
        });
    }
    Ok(steps)
}

/// The step `name` names (see [`Step::is_named`]), or an error listing
/// the known ones.
pub fn find<'a>(steps: &'a [Step], name: &str) -> Result<&'a Step, String> {
    steps
        .iter()
        .find(|step| step.is_named(name))
        .ok_or_else(|| {
            let known: Vec<&str> =
                steps.iter().map(|step| step.folder.as_str()).collect();
            format!("no step \"{name}\" in steps/ (known: {})", known.join(" "))
        })
}

/// The root of the workspace this crate belongs to.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("lab-tools sits in tools/bench, two folders below the workspace root")
        .to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lab_steps() -> Vec<Step> {
        load(&workspace_root()).expect("the workspace's metadata reads")
    }

    #[test]
    fn the_steps_come_in_folder_order_with_their_parents() {
        let steps = lab_steps();
        let folders: Vec<&str> =
            steps.iter().map(|s| s.folder.as_str()).collect();
        let mut sorted = folders.clone();
        sorted.sort();
        assert_eq!(folders, sorted);
        assert_eq!(steps[0].folder, "01-ping");
        assert_eq!(steps[0].parent, None);
        // 06 and 09 build on 04, not on their numeric predecessor.
        for (step, parent) in [
            ("06", "04-round-robin"),
            ("09", "04-round-robin"),
            ("08", "07-tls-back"),
        ] {
            let found = find(&steps, step).expect("the step exists");
            assert_eq!(found.parent.as_deref(), Some(parent), "{step}");
        }
        // Every other step names a parent that comes before it.
        for step in &steps[1..] {
            let parent = step.parent.as_deref().expect("a parent");
            assert!(parent < step.folder.as_str(), "{}", step.folder);
        }
    }

    #[test]
    fn a_step_is_named_by_number_folder_or_package() {
        let steps = lab_steps();
        for name in [
            "4",
            "04",
            "04-round-robin",
            "steps/04-round-robin/",
            "step-04-round-robin",
        ] {
            assert_eq!(find(&steps, name).unwrap().folder, "04-round-robin");
        }
        let err = find(&steps, "99").unwrap_err();
        assert!(err.starts_with("no step \"99\" in steps/ (known: 01-ping"));
    }

    #[test]
    fn demo_facts_default_to_a_plain_layer_4_balancer() {
        let steps = lab_steps();
        let four = &find(&steps, "04").unwrap().demo;
        assert_eq!(four.layer, 4);
        assert_eq!(four.front, "http");
        assert_eq!(four.backends, ["plain", "plain", "plain"]);
        let eight = &find(&steps, "08").unwrap().demo;
        assert_eq!(eight.front, "https");
        assert_eq!(eight.backends, ["plain", "tls", "tls"]);
        assert!(eight.args.iter().any(|arg| arg == "{servers}"));
        assert_eq!(find(&steps, "09").unwrap().demo.layer, 7);
        assert!(find(&steps, "01").unwrap().demo.backends.is_empty());
    }

    #[test]
    fn an_unknown_parent_is_an_error_naming_the_file() {
        let mut metadata: serde_json::Value = serde_json::from_str(
            &String::from_utf8(
                std::process::Command::new(env!("CARGO"))
                    .args(["metadata", "--format-version", "1", "--no-deps"])
                    .current_dir(workspace_root())
                    .output()
                    .expect("cargo metadata runs")
                    .stdout,
            )
            .expect("utf-8"),
        )
        .expect("json");
        let packages = metadata["packages"].as_array_mut().unwrap();
        let five = packages
            .iter_mut()
            .find(|p| p["name"] == "step-05-random-robin")
            .unwrap();
        five["metadata"]["lab"]["parent"] = "step-00-none".into();
        let metadata: Metadata = serde_json::from_value(metadata).unwrap();
        let err = from_metadata(&metadata).unwrap_err();
        assert_eq!(
            err,
            "steps/05-random-robin/Cargo.toml: parent \"step-00-none\" is \
             not a step's package"
        );
    }
}
