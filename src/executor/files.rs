//! Writing a step's attached [`StepFile`]s into the command's private
//! directory, and pointing the command's arguments at them.

use crate::error::{Error, Result};
use crate::plan::StepFile;
use crate::plan::file::substitute;
use std::path::Path;

/// The attached files written into a command's private directory (which
/// the caller creates and removes).
#[derive(Debug)]
pub(crate) struct Materialized {
    dir: std::path::PathBuf,
}

impl Materialized {
    /// Writes `files` into `dir`, a fresh private directory.
    pub(crate) fn write(dir: &Path, files: &[StepFile]) -> Result<Self> {
        restrict(dir, 0o700)?;
        for file in files {
            let path = dir.join(file.name());
            crate::executor::sandbox::write_private(&path, file.contents()).map_err(|e| {
                Error::refused(
                    crate::Refusal::StepFile,
                    format!("writing step file `{}`: {e}", file.name()),
                )
            })?;
        }
        Ok(Materialized {
            dir: dir.to_path_buf(),
        })
    }

    /// `argv` with every reference to one of `files` replaced by its path.
    pub(crate) fn argv(&self, argv: Vec<String>, files: &[StepFile]) -> Vec<String> {
        let mut argv = argv;
        for arg in argv.iter_mut().skip(1) {
            for file in files {
                let path = self.dir.join(file.name());
                if let Some(replaced) = substitute(arg, file.name(), &path.to_string_lossy()) {
                    *arg = replaced;
                    break;
                }
            }
        }
        argv
    }
}

#[cfg(unix)]
fn restrict(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io("restricting the step file directory", e))
}

#[cfg(not(unix))]
fn restrict(_path: &Path, _mode: u32) -> Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn files_are_private_and_removed_afterwards() {
        use std::os::unix::fs::PermissionsExt;
        let files = [StepFile::new("policy.json", "{\"rules\":[]}\n").unwrap()];
        let home = crate::executor::sandbox::private_home().unwrap();
        let written = Materialized::write(home.path(), &files).unwrap();
        let argv = written.argv(
            vec![
                "gcloud".into(),
                "--policy-file=policy.json".into(),
                "policy.json".into(),
                "other".into(),
            ],
            &files,
        );
        let path = argv[2].clone();
        assert!(Path::new(&path).is_absolute(), "{argv:?}");
        assert_eq!(argv[1], format!("--policy-file={path}"));
        assert_eq!(argv[3], "other");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"rules\":[]}\n");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir = Path::new(&path).parent().unwrap().to_owned();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        drop(written);
        drop(home);
        assert!(!dir.exists());
    }
}
