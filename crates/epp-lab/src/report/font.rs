//! The plot font, loaded once at run time: no font file ships with the project.

use std::sync::OnceLock;

use plotters::style::{FontStyle, register_font};

/// Where Debian-like systems keep a sans-serif TTF, tried in order after `$EPP_LAB_FONT`.
const CANDIDATES: [&str; 4] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

static LOADED: OnceLock<bool> = OnceLock::new();

/// Registers the first readable font as plotters' `sans-serif`; `false` (after one warning
/// on stderr) when there is none, and the plots are then drawn without text.
pub(crate) fn ensure_font() -> bool {
    *LOADED.get_or_init(|| {
        let env = std::env::var_os("EPP_LAB_FONT").map(std::path::PathBuf::from);
        let paths = env
            .into_iter()
            .chain(CANDIDATES.iter().map(std::path::PathBuf::from));
        for path in paths {
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            // plotters keeps fonts for the life of the process; this runs once.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            if register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                return true;
            }
        }
        eprintln!(
            "warning: epp-lab found no TTF font (set EPP_LAB_FONT); plots are drawn without text"
        );
        false
    })
}
