//! Entry point of the `tsim-helper` daemon; everything is in the library (`daemon::main`).

fn main() -> std::process::ExitCode {
    tsim_helper::daemon::main()
}
