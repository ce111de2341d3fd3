//! Files and folders that only this user can change: what the runtime builds, caches and loads.
//!
//! On a shared machine (GPU servers, clusters) anything under `/tmp` or a group-writable cache
//! folder can be pre-created or swapped by another user between a write and the read that
//! trusts it. So every build folder is [`private_temp_dir`] (a fresh, unpredictable name,
//! created exclusively with mode 0700), and a cache folder is used only when [`check_private_dir`]
//! finds it owned by this user and writable by nobody else (files likewise, [`is_private_file`]).

use std::io;
use std::path::Path;

/// A new folder under the system temporary folder, named `<prefix><random>`, created
/// exclusively (an existing path is never reused) with mode 0700; removed when dropped.
pub fn private_temp_dir(prefix: &str) -> io::Result<tempfile::TempDir> {
    let mut b = tempfile::Builder::new();
    b.prefix(prefix);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        b.permissions(std::fs::Permissions::from_mode(0o700));
    }
    b.tempdir()
}

/// The effective user id of this process.
#[cfg(unix)]
fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Why `meta` (of `path`) is not private to this user, if it is not: owned by another user, or
/// writable by its group or others.
#[cfg(unix)]
fn not_private(path: &Path, meta: &std::fs::Metadata) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    if meta.uid() != euid() {
        return Some(format!("{} is owned by uid {}, not by this user (uid {})", path.display(), meta.uid(), euid()));
    }
    if meta.mode() & 0o022 != 0 {
        return Some(format!("{} is writable by its group or others (mode {:o})", path.display(), meta.mode() & 0o7777));
    }
    None
}

/// Create `dir` (and missing parents) with mode 0700 where it does not exist, then check that
/// it is a real folder (not a symbolic link) owned by this user and writable by nobody else.
/// `Err` says what is wrong; callers then do without the folder.
pub fn check_private_dir(dir: &Path) -> Result<(), String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        if std::fs::symlink_metadata(dir).is_err() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| format!("creating {}: {e}", dir.display()))?;
        }
        let meta = std::fs::symlink_metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        if !meta.file_type().is_dir() {
            return Err(format!("{} is not a folder (a symbolic link or a file)", dir.display()));
        }
        match not_private(dir, &meta) {
            Some(why) => Err(why),
            None => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))
    }
}

/// Whether the parent folder `dir` of a private folder cannot be used by another user to swap
/// that folder: owned by this user or by root, and either writable by nobody else or sticky
/// (like `/tmp`, where only an entry's owner may rename or delete it). `Err` says why not.
pub fn check_parent_dir(dir: &Path) -> Result<(), String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        if meta.uid() != euid() && meta.uid() != 0 {
            return Err(format!("{} is owned by uid {}, not by this user (uid {}) or root", dir.display(), meta.uid(), euid()));
        }
        if meta.mode() & 0o022 != 0 && meta.mode() & 0o1000 == 0 {
            return Err(format!(
                "{} is writable by its group or others without the sticky bit (mode {:o})",
                dir.display(),
                meta.mode() & 0o7777
            ));
        }
        Ok(())
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// Whether `path` is a regular file (not a link) owned by this user and writable by nobody else.
pub fn is_private_file(path: &Path) -> bool {
    let Ok(meta) = std::fs::symlink_metadata(path) else { return false };
    if !meta.file_type().is_file() {
        return false;
    }
    #[cfg(unix)]
    {
        not_private(path, &meta).is_none()
    }
    #[cfg(not(unix))]
    {
        true
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn temp_dirs_are_private_and_fresh() {
        let a = private_temp_dir("mpc-test-").unwrap();
        let b = private_temp_dir("mpc-test-").unwrap();
        assert_ne!(a.path(), b.path());
        let mode = std::fs::metadata(a.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "mode {mode:o}");
        assert!(check_private_dir(a.path()).is_ok());
    }

    #[test]
    fn shared_folders_and_files_are_refused() {
        let d = private_temp_dir("mpc-test-").unwrap();
        let sub = d.path().join("cache/ptx");
        check_private_dir(&sub).unwrap();
        assert_eq!(std::fs::metadata(&sub).unwrap().permissions().mode() & 0o777, 0o700);
        std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o777)).unwrap();
        let why = check_private_dir(&sub).unwrap_err();
        assert!(why.contains("writable by its group or others"), "{why}");
        let f = d.path().join("file");
        std::fs::write(&f, b"x").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(is_private_file(&f));
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(!is_private_file(&f));
        let link = d.path().join("link");
        std::os::unix::fs::symlink(d.path(), &link).unwrap();
        assert!(check_private_dir(&link).unwrap_err().contains("not a folder"));
    }
}
