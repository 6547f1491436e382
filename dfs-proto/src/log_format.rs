//! How a daemon writes its log lines: `text` for people, `json` for log collectors. A config
//! value shared by every daemon (`log_format` in its TOML file, `--log-format`, `DFS_LOG_FORMAT`).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The shape of each log line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per event: time, level, target, message, `key=value` fields.
    #[default]
    Text,
    /// One JSON object per line, the event's fields at the top level.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<LogFormat, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("log format '{other}' is neither 'text' nor 'json'")),
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_both_formats() {
        for f in [LogFormat::Text, LogFormat::Json] {
            assert_eq!(f.to_string().parse(), Ok(f));
        }
        assert_eq!("JSON".parse(), Ok(LogFormat::Json));
        let err = "yaml".parse::<LogFormat>().expect_err("not a format");
        assert!(err.contains("yaml"), "{err}");
    }
}
