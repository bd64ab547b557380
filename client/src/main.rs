//! `tsimctl`: the command-line client of tsim-helper (see [`tsim_client::cli`]).
//!
//! Exit status: 0 success, 1 the operation failed (code and message on stderr), 2 usage error,
//! 3 cannot connect or protocol error.

fn main() -> std::process::ExitCode {
    tsim_client::cli::main()
}
