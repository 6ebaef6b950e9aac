//! Whether an EPP's gRPC health port reports SERVING.

use std::net::SocketAddr;

use epp_net::health::ServingStatus;
use epp_net::health::pb::HealthCheckRequest;
use epp_net::health::pb::health_client::HealthClient;
use tonic::transport::Channel;

/// A health client of `address` (plaintext) when it answers SERVING for `service` now;
/// `None` when it cannot be reached or answers anything else.
pub async fn serving(address: SocketAddr, service: &str) -> Option<HealthClient<Channel>> {
    let mut client = HealthClient::connect(format!("http://{address}"))
        .await
        .ok()?;
    let request = HealthCheckRequest {
        service: service.to_owned(),
    };
    let status = client.check(request).await.ok()?.into_inner().status;
    (status == ServingStatus::Serving as i32).then_some(client)
}
