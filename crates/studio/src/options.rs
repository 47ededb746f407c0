//! How Studio is started: where it listens and whether it may write.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use dal::AppEnv;

/// The port Studio listens on unless told otherwise.
pub const DEFAULT_PORT: u16 = 4983;

/// Studio's start-up options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Options {
    /// Where to listen: `127.0.0.1` only (port 0 picks a free one).
    pub listen: SocketAddr,
    /// `--write`: allow creating, editing and deleting rows, and retrying or discarding
    /// dead letters. Off, Studio only reads.
    pub write: bool,
    /// `--dangerously-write-web-data`: with `APP_ENV=web` (Postgres, often the
    /// production database), `--write` alone is refused; this second flag says the
    /// writes are meant.
    pub write_web_data: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), DEFAULT_PORT),
            write: false,
            write_web_data: false,
        }
    }
}

/// Options Studio refuses to start with.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OptionsError {
    /// The address is not `127.0.0.1`: Studio serves the database to whoever reaches it.
    #[error(
        "studio listens on 127.0.0.1 only (it serves the database to whoever can reach it), not on {0}"
    )]
    NotLoopback(IpAddr),
    /// `--write` against `APP_ENV=web` without the second flag.
    #[error(
        "APP_ENV=web: --write would let this page change the web database; add --dangerously-write-web-data if that is meant, or leave out --write to browse read-only"
    )]
    WebWritesNotConfirmed,
}

impl Options {
    /// Read-only on `127.0.0.1:port`.
    pub fn on_port(port: u16) -> Options {
        Options::at(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port))
    }

    /// Read-only on `listen` ([`Options::check`] refuses anything but `127.0.0.1`).
    pub fn at(listen: SocketAddr) -> Options {
        Options {
            listen,
            ..Options::default()
        }
    }

    /// With `--write` (and, for `APP_ENV=web`, `--dangerously-write-web-data`).
    pub fn writable(mut self, write: bool, write_web_data: bool) -> Options {
        self.write = write;
        self.write_web_data = write_web_data;
        self
    }

    /// Refuses a non-loopback address, and writes on `web` without the second flag.
    pub fn check(&self, app_env: AppEnv) -> Result<(), OptionsError> {
        if self.listen.ip() != IpAddr::V4(Ipv4Addr::LOCALHOST) {
            return Err(OptionsError::NotLoopback(self.listen.ip()));
        }
        if self.write && app_env == AppEnv::Web && !self.write_web_data {
            return Err(OptionsError::WebWritesNotConfirmed);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_addresses_are_accepted() {
        for refused in [
            "0.0.0.0:4983",
            "192.168.1.2:4983",
            "[::]:4983",
            "[::1]:4983",
        ] {
            let options = Options {
                listen: refused.parse().unwrap(),
                ..Options::default()
            };
            assert!(matches!(
                options.check(AppEnv::Local),
                Err(OptionsError::NotLoopback(_))
            ));
        }
        assert_eq!(Options::on_port(0).check(AppEnv::Local), Ok(()));
    }

    #[test]
    fn writes_on_web_need_the_second_flag() {
        let read_only = Options::on_port(0);
        assert_eq!(read_only.check(AppEnv::Web), Ok(()));
        assert_eq!(
            read_only.writable(true, false).check(AppEnv::Web),
            Err(OptionsError::WebWritesNotConfirmed)
        );
        assert_eq!(read_only.writable(true, true).check(AppEnv::Web), Ok(()));
        assert_eq!(read_only.writable(true, false).check(AppEnv::Local), Ok(()));
    }
}
