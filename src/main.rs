//! `ionctl`, the operator's CLI. Everything lives in [`ion_cluster::cli`].

fn main() -> std::process::ExitCode {
    ion_cluster::cli::main()
}
