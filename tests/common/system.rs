//! What some tests need of the system: strace on the server (what it
//! synced before it answered) and a small tmpfs (a full disk).

use super::*;

/// strace attached to every thread of the process `pid`, tracing the
/// system calls `calls` (strace's `-e trace=` list) into `out`, file
/// descriptors shown with their paths (`-y`); returns once it has
/// attached (a running server makes a system call every second: its
/// queue's sync thread). Stop it with `kill` and wait for it.
pub fn strace(pid: u32, out: &Path, calls: &str) -> Child {
    let err = out.with_extension("err");
    let child = Command::new("strace")
        .args(["-f", "-y", "-s", "200", "-qq"])
        .arg("-e")
        .arg(format!("trace={calls}"))
        .arg("-o")
        .arg(out)
        .arg("-p")
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .expect("strace runs (scripts/test installs it)");
    // strace attaches to the threads one by one: wait until every thread
    // of the server is traced, or a syscall of one not yet attached is
    // missing from the trace (a received fax's folder file, 1 run in 3).
    let tracer = child.id().to_string();
    assert!(
        wait_until(10, || all_threads_traced_by(pid, &tracer)),
        "strace did not attach to every thread: {}",
        std::fs::read_to_string(&err).unwrap_or_default()
    );
    child
}

/// Whether every thread of process `pid` has `tracer` as its tracer.
fn all_threads_traced_by(pid: u32, tracer: &str) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().all(|task| {
        std::fs::read_to_string(task.path().join("status")).is_ok_and(|status| {
            status.lines().any(|l| {
                l.strip_prefix("TracerPid:")
                    .is_some_and(|v| v.trim() == tracer)
            })
        })
    })
}

/// A tmpfs mounted for the test, unmounted when dropped.
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    pub fn mount(path: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(path).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "this test mounts a tmpfs for the queue and needs root: {}",
            output_text(&out)
        );
        Tmpfs(path.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}
