//! A simulated Salesforce org on 127.0.0.1:0, and a client for it as the service holds one.

use std::time::Duration;

use secrecy::{SecretBox, SecretString};
use sfsync::salesforce::{Client, TokenKey};
use sfsync::simulator::{Simulator, SimulatorConfig};
use sfsync::store::Store;

/// A simulated org.
pub async fn start(config: SimulatorConfig) -> Simulator {
    sfsync::tools::bench::loopback::simulator(config)
        .await
        .expect("start simulator")
}

/// A client for `sim`'s org whose refresh token is sealed in `store`, starting without a
/// session as the service does: its first call refreshes it, and the token response names the
/// connection's user.
pub fn connecting_client(sim: &Simulator, store: &Store) -> Client {
    let key = TokenKey::new(1, SecretBox::new(Box::new([42u8; 32])));
    sfsync::tools::bench::loopback::client(sim, store, key).expect("client")
}

/// [`connecting_client`] with a session already open.
pub fn client_for(sim: &Simulator, store: &Store) -> Client {
    connecting_client(sim, store)
        .with_access_token(SecretString::from(sim.credentials().access_token))
        .with_timeout(Duration::from_secs(10))
}
