//! `scimfleet import --source ID --watch DIR`: a drop folder. Every file a
//! HR system (or an SFTP job) drops there is imported in name order, then
//! moved aside: to `imported/`, to `held/` when the mass-deprovision limits
//! hold it (an approver imports it from there with `--approver`), or to
//! `failed/` with a `.error.txt` beside it saying why (line and column,
//! never a value). Only files with the source format's extension (`.csv`,
//! or `.jsonl`) are taken, so a writer drops a file under another name and
//! renames it when complete; hidden files are ignored.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use scimfleet_runtime::Config;
use scimfleet_runtime::config::FileFormat;
use tokio_util::sync::CancellationToken;

use crate::AdminError;

/// Watches `dir` for `source`'s files until `stop`, looking every `every`.
pub async fn watch(
    config: &Config,
    source: &str,
    dir: &Path,
    every: Duration,
    stop: CancellationToken,
    out: &mut impl Write,
) -> Result<(), AdminError> {
    let hr = super::hr_source(config, source)?;
    let extension = match hr.format {
        FileFormat::Csv => "csv",
        FileFormat::Jsonl => "jsonl",
    };
    for sub in ["imported", "held", "failed"] {
        std::fs::create_dir_all(dir.join(sub)).map_err(AdminError::file("create", &dir.join(sub)))?;
    }
    writeln!(out, "watching {} for {source} files (*.{extension})", dir.display())?;
    loop {
        for file in dropped(dir, extension)? {
            let (to, error) = match super::run(config, source, &file, false, None, out).await {
                Ok(_) => ("imported", None),
                Err(AdminError::Refused(why)) if why.contains("held for approval") => ("held", Some(why)),
                Err(error) => ("failed", Some(scimfleet_runtime::telemetry::error_chain(&error))),
            };
            let name = file.file_name().map(PathBuf::from).unwrap_or_default();
            let target = dir.join(to).join(&name);
            std::fs::rename(&file, &target).map_err(AdminError::file("move", &file))?;
            if let Some(error) = error {
                writeln!(out, "{}: {to}: {error}", name.display())?;
                let note = dir.join(to).join(format!("{}.error.txt", name.display()));
                std::fs::write(&note, format!("{error}\n")).map_err(AdminError::file("create", &note))?;
            }
        }
        out.flush()?;
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            () = tokio::time::sleep(every) => {}
        }
    }
}

/// The complete files waiting in `dir`, in name order.
fn dropped(dir: &Path, extension: &str) -> Result<Vec<PathBuf>, AdminError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(AdminError::file("read", dir))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.is_file())
        .filter(|path| !path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.')))
        .filter(|path| {
            path.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case(extension))
        })
        .collect();
    files.sort();
    Ok(files)
}
