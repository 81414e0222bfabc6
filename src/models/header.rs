//! The header of a model's SQL file: the comment lines before its first line of SQL.
//!
//! ```sql
//! -- step_trainer_trusted: step-trainer readings attributed to a curated customer.
//! --
//! -- Grain: one row per landed step-trainer reading, each at most once.
//! -- (prose: why the model is written the way it is)
//! --
//! -- incremental: per reading
//! ```
//!
//! The first line names the table and says what it holds. Any other header line that
//! starts with one word and a colon is a setting, and only these exist:
//!
//! - `Grain:` (required) what one row is, in words, as dbt's descriptions state it;
//! - `incremental:` (optional) `per customer` or `per reading`: what an incremental run
//!   recomputes the model by. Without it the model is rebuilt in full on every run that
//!   changes its inputs.
//!
//! A misspelt or unknown setting is refused, as dbt refuses a bad `config()`: a typo in
//! `incremental:` would otherwise turn a model into full rebuilds without a word. The
//! build script checks every model with this same file, so such a typo fails the build.
//!
//! This file uses nothing of the crate: the build script compiles it on its own.

/// What the header of a model declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// What the table holds: the first line, after `-- <table>:`.
    pub description: String,
    /// What one row is (`-- Grain: …`), with the prose lines that follow it.
    pub grain: String,
    /// What an incremental run recomputes the model by; `None`: always rebuilt in full.
    pub incremental: Option<Grain>,
}

/// The grain of a model: what one of its rows belongs to, and so what an incremental
/// run can recompute it by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Grain {
    /// One customer (e-mail address compared trimmed and case-insensitively).
    Customer,
    /// One step-trainer reading: serial number and instant.
    Reading,
}

impl Grain {
    /// Every grain, in the order the header lists them in its messages.
    pub const ALL: [Grain; 2] = [Grain::Customer, Grain::Reading];

    /// How the header names the grain: `per customer` or `per reading`.
    pub fn label(self) -> &'static str {
        match self {
            Grain::Customer => "per customer",
            Grain::Reading => "per reading",
        }
    }
}

/// The settings a header may hold, as written (compared case-insensitively).
pub const SETTINGS: &[&str] = &["Grain", "incremental"];

/// Reads the header of the model of `table` from its SQL; the error says what is wrong,
/// naming the line.
pub fn parse(table: &str, sql: &str) -> Result<Header, String> {
    let mut lines = sql
        .lines()
        .enumerate()
        .map(|(i, line)| (i + 1, line.trim()))
        .take_while(|(_, line)| line.starts_with("--") || line.is_empty())
        .filter_map(|(n, line)| line.strip_prefix("--").map(|rest| (n, rest.trim())));
    let description = match lines.next() {
        Some((_, first)) => match first.split_once(':') {
            Some((name, what)) if name.trim() == table && !what.trim().is_empty() => {
                what.trim().to_string()
            }
            _ => {
                return Err(format!(
                    "line 1: the header starts with `-- {table}: <what the table holds>`"
                ));
            }
        },
        None => {
            return Err(format!(
                "the file starts with a header: `-- {table}: <what the table holds>`"
            ));
        }
    };
    let mut grain: Option<String> = None;
    let mut incremental = None;
    // The prose lines after `Grain:` belong to it, up to an empty comment line.
    let mut in_grain = false;
    for (n, line) in lines {
        match setting(line) {
            Some((key, value)) => {
                in_grain = false;
                match key.to_ascii_lowercase().as_str() {
                    "grain" => {
                        if grain.is_some() {
                            return Err(format!("line {n}: `Grain:` is given twice"));
                        }
                        if value.is_empty() {
                            return Err(format!("line {n}: `Grain:` says what one row is"));
                        }
                        grain = Some(value.to_string());
                        in_grain = true;
                    }
                    "incremental" => {
                        if incremental.is_some() {
                            return Err(format!("line {n}: `incremental:` is given twice"));
                        }
                        let value = value.trim_end_matches('.').trim();
                        let Some(found) = Grain::ALL.into_iter().find(|g| g.label() == value)
                        else {
                            let known: Vec<String> = Grain::ALL
                                .iter()
                                .map(|g| format!("`{}`", g.label()))
                                .collect();
                            return Err(format!(
                                "line {n}: `incremental: {value}` is not a grain; write {}",
                                known.join(" or ")
                            ));
                        };
                        incremental = Some(found);
                    }
                    _ => {
                        return Err(format!(
                            "line {n}: unknown setting `{key}:`{}; the settings are {}",
                            nearest(key)
                                .map(|s| format!(" (did you mean `{s}:`?)"))
                                .unwrap_or_default(),
                            SETTINGS
                                .iter()
                                .map(|s| format!("`{s}:`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ));
                    }
                }
            }
            None if line.is_empty() => in_grain = false,
            None => {
                if in_grain && let Some(g) = grain.as_mut() {
                    g.push(' ');
                    g.push_str(line);
                }
            }
        }
    }
    let Some(grain) = grain else {
        return Err("the header says what one row is: `-- Grain: one row per …`".to_string());
    };
    Ok(Header {
        description,
        grain,
        incremental,
    })
}

/// `Word: value` with one word (letters, digits, `_`) before the colon: a setting.
fn setting(line: &str) -> Option<(&str, &str)> {
    let (key, value) = line.split_once(':')?;
    let word = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    word.then(|| (key, value.trim()))
}

/// The known setting nearest to a misspelt one, when it is close (an edit or two away).
fn nearest(key: &str) -> Option<&'static str> {
    let key = key.to_ascii_lowercase();
    SETTINGS
        .iter()
        .map(|s| (distance(&key, &s.to_ascii_lowercase()), *s))
        .filter(|(d, s)| *d <= 2.max(s.len() / 4))
        .min()
        .map(|(_, s)| s)
}

/// Levenshtein distance between two short strings.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let here = row[j + 1];
            row[j + 1] = (row[j + 1] + 1)
                .min(row[j] + 1)
                .min(prev + usize::from(ca != *cb));
            prev = here;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "-- t: what t holds.\n--\n-- Grain: one row per customer;\n-- more words.\n--\n-- Prose, with a colon: here.\n-- incremental: per customer\n\nSELECT 1";

    #[test]
    fn a_header_gives_description_grain_and_incremental() {
        let header = parse("t", GOOD).unwrap();
        assert_eq!(header.description, "what t holds.");
        assert_eq!(header.grain, "one row per customer; more words.");
        assert_eq!(header.incremental, Some(Grain::Customer));
        let full = parse("t", "-- t: x\n-- Grain: one row per pair\nSELECT 1").unwrap();
        assert_eq!(full.incremental, None);
    }

    #[test]
    fn a_misspelt_or_unknown_setting_is_refused_with_the_line() {
        for (sql, expected) in [
            (
                GOOD.replace("incremental:", "incremntal:"),
                "line 7: unknown setting `incremntal:` (did you mean `incremental:`?)",
            ),
            (
                GOOD.replace("per customer\n\n", "per custmer\n\n"),
                "line 7: `incremental: per custmer` is not a grain",
            ),
            (
                GOOD.replace("Grain:", "Grian:"),
                "line 3: unknown setting `Grian:`",
            ),
            (
                GOOD.replace("-- t:", "-- u:"),
                "line 1: the header starts with `-- t:",
            ),
            (
                GOOD.replace("-- Grain: one row per customer;\n", ""),
                "the header says what one row is",
            ),
            (
                format!("{GOOD}\n").replace(
                    "-- incremental",
                    "-- incremental: per reading\n-- incremental",
                ),
                "`incremental:` is given twice",
            ),
            ("SELECT 1".to_string(), "the file starts with a header"),
        ] {
            let err = parse("t", &sql).unwrap_err();
            assert!(err.contains(expected), "{err}\n--- for ---\n{sql}");
        }
    }

    #[test]
    fn settings_after_the_header_are_sql_comments_not_settings() {
        let sql = "-- t: x\n-- Grain: one row\nSELECT 1\n-- incremntal: per nothing\n";
        assert_eq!(parse("t", sql).unwrap().incremental, None);
    }
}
