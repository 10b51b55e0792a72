//! `ionctl`, the operator's CLI. Everything lives in [`ion_cluster::cli`], except the
//! webrtc-rs client of `ionctl loadtest`, which is kept out of the library (see
//! `ion_cluster::loadtest::peer`).

mod loadtest_client;

fn main() -> std::process::ExitCode {
    ion_cluster::cli::main(Some(std::sync::Arc::new(loadtest_client::WebRtcConnector)))
}
