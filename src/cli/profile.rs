//! `cw-exec profile`: the bundled profiles, and checking a profile file.

use super::{fail, ProfileCommand};
use crate::fsio;
use crate::policy::{Profile, BUNDLED};

/// `cw-exec profile list | show | check`.
pub fn profile(cmd: ProfileCommand) -> i32 {
    match cmd {
        ProfileCommand::List => {
            for (name, text) in BUNDLED {
                let description = Profile::parse(text, name)
                    .map(|p| p.description)
                    .unwrap_or_default();
                println!("{name:<16} {description}");
            }
            0
        }
        ProfileCommand::Show { name } => match BUNDLED.iter().find(|(n, _)| *n == name) {
            Some((_, text)) => {
                print!("{text}");
                0
            }
            None => fail(format!(
                "no bundled profile {name:?} (bundled: {})",
                BUNDLED
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        },
        ProfileCommand::Check { file } => {
            let text = match fsio::read_text(&file, fsio::MAX_PROFILE) {
                Ok(t) => t,
                Err(e) => return fail(format!("{}: {e}", file.display())),
            };
            match Profile::parse(&text, &file.display().to_string()) {
                Ok(_) => {
                    println!("{}: ok", file.display());
                    0
                }
                Err(e) => fail(e),
            }
        }
    }
}
