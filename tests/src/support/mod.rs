//! A real broker for the tests, unique topic names and admin REST helpers.
//!
//! Integration tests call [`broker`]: it returns the broker named by `PULSAR_TEST_URL` /
//! `PULSAR_TEST_ADMIN_URL`, or else one answering on 127.0.0.1:6650 / 127.0.0.1:8080, or else
//! starts one with the broker script (`PULSAR_BROKER_SCRIPT`, default `scripts/pulsar-broker`)
//! exactly once per test process. A broker started here is stopped by the script's watchdog when
//! the test process exits, however it exits. When no broker can be had, [`broker`] panics: the
//! integration tests fail, they are never skipped.

mod admin;
mod broker;
mod cluster;
mod core_driver;
mod error;
mod http;
mod info;
mod java;
mod process;
mod python;
mod sockets;
mod topic;

pub use admin::{topic_admin_path, Admin, HttpResponse};
pub use broker::{batch_ack_broker, broker, shared_broker, try_broker, txn_broker};
pub use cluster::{
    cluster, cluster_script_path, try_cluster, Cluster, ClusterBroker, ClusterCredentials,
};
pub use core_driver::{texts, CoreDriver, DriverResult};
pub use error::SupportError;
pub use info::{AuthInfo, BrokerInfo, TlsFiles};
pub use java::JavaProgram;
pub use process::{script_path, BrokerOptions, BrokerProcess};
pub use python::{python_command, python_interpreter};
pub use sockets::{unix_ms, StdSockets};
pub use topic::unique_topic;

/// Creates a partitioned topic with `partitions` partitions on the shared test broker.
pub fn create_partitioned(topic: &str, partitions: u32) -> Result<(), SupportError> {
    try_broker()?.admin()?.create_partitioned(topic, partitions)
}

/// The admin client of the shared test broker.
pub fn admin() -> Result<Admin, SupportError> {
    try_broker()?.admin()
}
