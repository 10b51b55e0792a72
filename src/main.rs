//! `ionctl`, the operator's CLI. Everything lives in [`ion_cluster::cli`]; `ionctl loadtest`
//! joins its participants with the webrtc-rs client of [`ion_cluster::loadtest::client`].

fn main() -> std::process::ExitCode {
    ion_cluster::cli::main(Some(std::sync::Arc::new(
        ion_cluster::loadtest::client::WebRtcConnector,
    )))
}
