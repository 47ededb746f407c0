//! `generate NAME`: scaffold a migration and add it to the history.

use std::io;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

/// The scaffold: a real, compiled migration (see `template.rs`), renamed.
const TEMPLATE: &str = include_str!("template.rs");
const TEMPLATE_NAME: &str = "m00000000_000000_template";

/// The module name of a new migration called `name` made at `at`:
/// `mYYYYMMDD_HHMMSS_name`, so names sort in the order they were made.
pub fn module_name(name: &str, at: DateTime<Utc>) -> io::Result<String> {
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !name.starts_with('_');
    if !valid {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "migration name {name:?} must be lowercase letters, digits and underscores, e.g. add_task_priority"
            ),
        ));
    }
    Ok(format!("m{}_{name}", at.format("%Y%m%d_%H%M%S")))
}

/// Writes `src_dir/<module>.rs` from the template and appends it to the `history!` list
/// in `src_dir/lib.rs`. Returns the new file's path.
pub fn generate(src_dir: &Path, name: &str, at: DateTime<Utc>) -> io::Result<PathBuf> {
    let module = module_name(name, at)?;
    let file = src_dir.join(format!("{module}.rs"));
    if file.exists() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists", file.display()),
        ));
    }
    let lib_path = src_dir.join("lib.rs");
    let lib = std::fs::read_to_string(&lib_path)?;
    let lib = add_to_history(&lib, &module).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "no `history! {{ ... }}` list found in {}",
                lib_path.display()
            ),
        )
    })?;
    std::fs::write(&file, TEMPLATE.replace(TEMPLATE_NAME, &module))?;
    std::fs::write(&lib_path, lib)?;
    Ok(file)
}

/// `lib` with `module` appended to its `history! { ... }` invocation.
fn add_to_history(lib: &str, module: &str) -> Option<String> {
    let start = if lib.starts_with("history! {") {
        0
    } else {
        lib.find("\nhistory! {")? + 1
    };
    let close = start + lib[start..].find("\n}")?;
    let mut out = String::with_capacity(lib.len() + module.len() + 8);
    out.push_str(&lib[..close]);
    out.push_str(&format!("\n    {module},"));
    out.push_str(&lib[close..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_the_module_to_the_history_list() {
        let lib = "mod x;\n\nhistory! {\n    m1_a,\n}\n";
        assert_eq!(
            add_to_history(lib, "m2_b").unwrap(),
            "mod x;\n\nhistory! {\n    m1_a,\n    m2_b,\n}\n"
        );
        assert!(add_to_history("nothing here", "m2_b").is_none());
    }

    #[test]
    fn names_are_checked_and_time_ordered() {
        let at = DateTime::parse_from_rfc3339("2026-11-23T08:30:05Z")
            .unwrap()
            .to_utc();
        assert_eq!(
            module_name("add_priority", at).unwrap(),
            "m20261123_083005_add_priority"
        );
        for bad in ["", "Add", "add-priority", "_x", "drop table"] {
            assert!(module_name(bad, at).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn generate_writes_the_file_and_wires_it_in() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("lib.rs"), "history! {\n    m1_a,\n}\n").unwrap();
        let at = DateTime::parse_from_rfc3339("2026-11-23T08:30:05Z")
            .unwrap()
            .to_utc();
        let file = generate(dir.path(), "add_priority", at).unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.contains("\"m20261123_083005_add_priority\""));
        assert!(!text.contains(TEMPLATE_NAME));
        let lib = std::fs::read_to_string(dir.path().join("lib.rs")).unwrap();
        assert!(lib.contains("    m20261123_083005_add_priority,\n}"));
        assert!(
            generate(dir.path(), "add_priority", at).is_err(),
            "never overwrites"
        );
    }
}
