//! Per-connection state: handshake (with optional auth challenge), keep-alive and auth refresh.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use pulsar_proto::{pb, FrameDecoder, PROTOCOL_VERSION};

use super::{Cluster, ConnId, Listener, TokenError};

/// Where a connection is in its handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnState {
    AwaitConnect,
    AwaitAuth,
    Ready,
}

/// A producer registered on a connection.
#[derive(Debug, Clone)]
pub(crate) struct ProducerReg {
    pub(crate) topic: String,
    pub(crate) name: String,
    pub(crate) registration: u64,
    /// After a persistence failure: the entry the client must resend from, as (sequence id, chunk
    /// id) — every chunk of a chunked message carries the message's sequence id.
    pub(crate) failed_from: Option<(u64, Option<i32>)>,
}

/// A consumer registered on a connection.
#[derive(Debug, Clone)]
pub(crate) struct ConsumerReg {
    pub(crate) topic: String,
    pub(crate) subscription: String,
    pub(crate) permits: i64,
    pub(crate) epoch: Option<u64>,
    pub(crate) priority: i32,
    pub(crate) name: String,
}

/// One client connection to one broker.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) broker: usize,
    pub(crate) state: ConnState,
    pub(crate) rbuf: BytesMut,
    pub(crate) decoder: FrameDecoder,
    pub(crate) producers: BTreeMap<u64, ProducerReg>,
    /// Producers the broker closed: late SENDs for them are ignored, not fatal.
    pub(crate) closed_producers: BTreeSet<u64>,
    pub(crate) consumers: BTreeMap<u64, ConsumerReg>,
    pub(crate) last_input: Duration,
    pub(crate) ping_outstanding: bool,
    pub(crate) next_check: Duration,
    pub(crate) supports_auth_refresh: bool,
    pub(crate) auth_refresh_pending: bool,
    /// A liveness probe: close unless input arrives after `probe_started` by this time.
    pub(crate) probe_deadline: Option<Duration>,
    pub(crate) probe_started: Duration,
    /// How the connection reached the broker.
    pub(crate) listener: Listener,
    /// When it was accepted.
    pub(crate) connected_at: Duration,
    /// The client's `client_version` from CONNECT.
    pub(crate) client_version: String,
    /// The authenticated role (`None` without authentication).
    pub(crate) role: Option<String>,
    /// The rights the role had when the connection authenticated (`None`: everything).
    pub(crate) rights: Option<super::RoleRules>,
    /// When the credentials expire (Unix ms): the broker then asks for fresh ones.
    pub(crate) auth_expires_ms: Option<u64>,
}

impl Conn {
    pub(crate) fn new(broker: usize, now: Duration, keep_alive: Duration) -> Conn {
        Conn {
            broker,
            state: ConnState::AwaitConnect,
            rbuf: BytesMut::new(),
            decoder: FrameDecoder::default(),
            producers: BTreeMap::new(),
            closed_producers: BTreeSet::new(),
            consumers: BTreeMap::new(),
            last_input: now,
            ping_outstanding: false,
            next_check: now + keep_alive,
            supports_auth_refresh: false,
            auth_refresh_pending: false,
            probe_deadline: None,
            probe_started: now,
            listener: Listener::default(),
            connected_at: now,
            client_version: String::new(),
            role: None,
            rights: None,
            auth_expires_ms: None,
        }
    }
}

impl Cluster {
    /// Whether clients must authenticate.
    fn auth_required(&self) -> bool {
        let cfg = &self.config;
        cfg.auth_token.is_some() || !cfg.tokens.is_empty() || cfg.jwt.is_some()
    }

    /// The role a token proves, and when it expires (Unix ms): configured opaque tokens first,
    /// then JWT validation.
    fn role_of_token(&self, data: &[u8]) -> Result<(String, Option<u64>), TokenError> {
        let cfg = &self.config;
        if cfg.auth_token.as_deref().map(str::as_bytes) == Some(data) {
            return Ok(("token".to_owned(), None));
        }
        let token = std::str::from_utf8(data).map_err(|_| TokenError::NotUtf8)?;
        if let Some(role) = cfg.tokens.get(token) {
            return Ok((role.clone(), None));
        }
        let Some(jwt) = &cfg.jwt else {
            return Err(TokenError::Unknown);
        };
        let (role, exp) = jwt.check(token, self.unix_now_ms())?;
        Ok((role, exp.map(|s| s.saturating_mul(1000))))
    }

    /// The role the credentials of CONNECT prove (`Ok(None)` without authentication), and when
    /// they expire.
    fn authenticate(
        &self,
        c: &pb::CommandConnect,
    ) -> Result<(Option<String>, Option<u64>), TokenError> {
        if !self.auth_required() {
            return Ok((None, None));
        }
        if c.auth_method_name.as_deref() != Some("token") {
            return Err(TokenError::Method(c.auth_method_name.clone()));
        }
        let data = c.auth_data.as_deref().unwrap_or_default();
        self.role_of_token(data).map(|(r, e)| (Some(r), e))
    }

    fn refuse_connect(&mut self, conn: ConnId, error: pb::ServerError, message: &str) {
        self.write(
            conn,
            pb::CommandError {
                request_id: u64::MAX,
                error: error as i32,
                message: message.into(),
            }
            .into(),
        );
        self.close_conn(conn, message);
    }

    pub(crate) fn handle_connect(&mut self, conn: ConnId, c: &pb::CommandConnect) {
        let (role, expires) = match self.authenticate(c) {
            Ok(r) => r,
            Err(e) => {
                self.note(format!("{conn} authentication refused: {e}"));
                let message = format!("Unable to authenticate: {e}");
                self.refuse_connect(conn, pb::ServerError::AuthenticationError, &message);
                return;
            }
        };
        let rights = self.rights_of(role.as_deref().unwrap_or(super::ANONYMOUS));
        let peer = self
            .conns
            .get(&conn)
            .map(|x| x.listener.peer.clone())
            .unwrap_or_default();
        if rights.as_ref().is_some_and(|r| !r.allows_peer(&peer)) {
            self.refuse_connect(
                conn,
                pb::ServerError::AuthorizationError,
                "not allowed to connect from this address",
            );
            return;
        }
        if let Some(cn) = self.conns.get_mut(&conn) {
            cn.role = role;
            cn.rights = rights;
            cn.auth_expires_ms = expires;
        }
        let refresh = c
            .feature_flags
            .as_ref()
            .and_then(|f| f.supports_auth_refresh)
            .unwrap_or(false);
        if let Some(cn) = self.conns.get_mut(&conn) {
            cn.supports_auth_refresh = refresh;
            cn.client_version = c.client_version.clone();
        }
        if self.config.auth_token.is_some() && self.fault(|f| f.auth_challenge) {
            if let Some(cn) = self.conns.get_mut(&conn) {
                cn.state = ConnState::AwaitAuth;
            }
            self.send_challenge(conn, "challenge");
            return;
        }
        self.finish_handshake(conn);
    }

    fn send_challenge(&mut self, conn: ConnId, what: &'static str) {
        self.write(
            conn,
            pb::CommandAuthChallenge {
                server_version: Some(self.config.server_version.clone()),
                challenge: Some(pb::AuthData {
                    auth_method_name: Some("token".into()),
                    auth_data: Some(Bytes::from_static(what.as_bytes())),
                }),
                protocol_version: Some(PROTOCOL_VERSION),
            }
            .into(),
        );
    }

    fn finish_handshake(&mut self, conn: ConnId) {
        let Some(cn) = self.conns.get_mut(&conn) else {
            return;
        };
        cn.state = ConnState::Ready;
        let max = self.config.max_message_size;
        self.write(
            conn,
            pb::CommandConnected {
                server_version: self.config.server_version.clone(),
                protocol_version: Some(PROTOCOL_VERSION),
                max_message_size: Some(max),
                feature_flags: Some(pb::FeatureFlags {
                    supports_auth_refresh: Some(true),
                    supports_broker_entry_metadata: Some(false),
                    supports_partial_producer: Some(true),
                    supports_topic_watchers: Some(false),
                    supports_get_partitioned_metadata_without_auto_creation: Some(true),
                    supports_repl_dedup_by_lid_and_eid: Some(false),
                }),
            }
            .into(),
        );
    }

    pub(crate) fn handle_auth_response(&mut self, conn: ConnId, r: &pb::CommandAuthResponse) {
        if !self.auth_required() {
            return;
        }
        let data = r
            .response
            .as_ref()
            .and_then(|d| d.auth_data.as_deref())
            .unwrap_or_default();
        let checked = self.role_of_token(data);
        let Some(cn) = self.conns.get_mut(&conn) else {
            return;
        };
        match checked {
            // the refreshed credentials must prove the same role (as Apache Pulsar requires)
            Ok((role, expires)) if cn.role.is_none() || cn.role.as_deref() == Some(&role) => {
                cn.auth_expires_ms = expires;
                match cn.state {
                    ConnState::AwaitAuth => self.finish_handshake(conn),
                    _ => cn.auth_refresh_pending = false,
                }
            }
            Ok((role, _)) => {
                let why = format!("refreshed credentials are for role {role}");
                self.close_conn(conn, &why);
            }
            Err(e) => {
                let why = format!("bad auth response: {e}");
                self.close_conn(conn, &why);
            }
        }
    }

    /// Closes connections that failed a liveness probe (no input since the probe started).
    pub(crate) fn probe_checks(&mut self) {
        let now = self.now;
        let due: Vec<(ConnId, bool)> = self
            .conns
            .iter()
            .filter(|(_, c)| c.probe_deadline.is_some_and(|d| d <= now))
            .map(|(id, c)| (*id, c.last_input > c.probe_started))
            .collect();
        for (conn, alive) in due {
            if alive {
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.probe_deadline = None;
                }
            } else {
                self.close_conn(conn, "liveness probe failed");
            }
        }
    }

    /// Every keep-alive interval: close if the last ping (or auth refresh) went unanswered, otherwise
    /// ping (and sometimes ask for fresh credentials).
    pub(crate) fn keep_alive_checks(&mut self) {
        let interval = self.config.keep_alive;
        if interval.is_zero() {
            return;
        }
        let now = self.now;
        let now_ms = self.unix_now_ms();
        let due: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| c.next_check <= now)
            .map(|(id, _)| *id)
            .collect();
        for conn in due {
            let Some(c) = self.conns.get_mut(&conn) else {
                continue;
            };
            c.next_check = now + interval;
            if c.state != ConnState::Ready {
                self.close_conn(conn, "handshake not completed in time");
                continue;
            }
            if c.ping_outstanding {
                self.close_conn(conn, "keep-alive timeout");
                continue;
            }
            if c.auth_refresh_pending {
                self.close_conn(conn, "auth refresh not answered");
                continue;
            }
            c.ping_outstanding = true;
            let refresh = c.supports_auth_refresh && self.config.auth_token.is_some();
            let expired = c
                .auth_expires_ms
                .zip(now_ms)
                .is_some_and(|(exp, now)| now > exp);
            if expired && !c.supports_auth_refresh {
                self.close_conn(conn, "credentials expired");
                continue;
            }
            self.write(conn, pb::CommandPing {}.into());
            if expired || (refresh && self.fault(|f| f.auth_refresh)) {
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.auth_refresh_pending = true;
                }
                self.send_challenge(conn, "refresh");
            }
        }
    }
}
