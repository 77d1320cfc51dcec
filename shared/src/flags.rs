//! Start-up flags both services take, with the same environment variables.

use std::path::PathBuf;

use crate::{domain::Clock, rpc::telemetry::LogFormat};

/// Policy file, log format and clock.
#[derive(Debug, Clone, clap::Args)]
pub struct CommonFlags {
    /// Policy file (TOML); the compiled-in Anhui default when absent.
    #[arg(long, env = "GONGJI_POLICY")]
    pub policy: Option<PathBuf>,
    /// Log format.
    #[arg(long, env = "GONGJI_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// "system", or a fixed RFC 3339 time for demos and tests (e.g. 2024-11-15T10:00:00+08:00).
    #[arg(long, env = "GONGJI_CLOCK", default_value = "system", value_parser = parse_clock)]
    pub clock: Clock,
}

fn parse_clock(value: &str) -> Result<Clock, String> {
    Clock::parse(value).map_err(|e| e.to_string())
}
