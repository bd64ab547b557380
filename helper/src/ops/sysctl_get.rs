//! `sysctl_get`: read a sysctl on the allow-list, inside the namespace.

use tsim_protocol::OpResult;
use tsim_protocol::net::SysctlKey;
use tsim_protocol::ops::{SysctlGet, SysctlRead};

use super::{NsHandle, OpCtx};
use crate::base::error::HelperError;

/// Reads `key` inside `h`.
pub(super) async fn read(
    ctx: &OpCtx<'_>,
    h: &NsHandle,
    key: &SysctlKey,
) -> Result<String, HelperError> {
    let path = format!("/proc/sys/{}", allowed(key)?);
    let result = ctx.helper.netns.sysctl_read(&h.name, h.ino, path).await?;
    result
        .map(|v| v.trim().to_owned())
        .map_err(|e| sysctl_error(key, &h.name, &e))
}

/// The `/proc/sys` path of `key`, or `not_allowed`.
pub(super) fn allowed(key: &SysctlKey) -> Result<&str, HelperError> {
    key.proc_path().ok_or_else(|| {
        HelperError::NotAllowed(format!(
            "Sysctl {key} is not on the allow-list: {}",
            SysctlKey::ALLOWED
        ))
    })
}

/// The error for a failed sysctl access.
pub(super) fn sysctl_error(
    key: &SysctlKey,
    ns: &tsim_protocol::NsName,
    e: &std::io::Error,
) -> HelperError {
    match e.kind() {
        std::io::ErrorKind::NotFound => HelperError::NotFound(format!(
            "There is no sysctl {key} in namespace {ns} (is the interface there?)"
        )),
        std::io::ErrorKind::InvalidInput => {
            HelperError::InvalidArgument(format!("The kernel refused the value for {key}: {e}"))
        }
        _ => HelperError::Kernel(format!("Cannot access sysctl {key} in namespace {ns}: {e}")),
    }
}

pub(super) async fn handle(ctx: &OpCtx<'_>, args: SysctlGet) -> Result<OpResult, HelperError> {
    allowed(&args.key)?;
    let h = ctx.ns(&args.ns).await?;
    let value = read(ctx, &h, &args.key).await?;
    Ok(OpResult::SysctlGet(SysctlRead {
        key: args.key.dotted(),
        value,
    }))
}
