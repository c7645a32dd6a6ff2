//! The test suite of the queue's public behaviour, run against every
//! backend: each test is an `async fn(Backend)` that opens the store
//! under test through [`Backend::open`] (as often as it likes: opening
//! again finds what was committed before), and [`backend_tests!`] makes
//! one `#[test]` per test and backend. A new backend adds one line at
//! the bottom: `backend_tests!(name, |dir| Store::new(…))`, with a third
//! argument when the backend needs a peer started first (PostgreSQL: a
//! private instance, `pg.rs`).
//!
//! Tests of what one backend does inside (sled's files, its reopening
//! after a write error) are beside it (`sled/tests.rs`).

mod admin;
mod cycles;
mod enqueue;
mod faxlog;
pub(crate) mod pg;
mod records;
mod schedule;

pub(crate) use crate::envelope::{Etrn, FaxProgress, NewMessage, NewRecipient, QueueId, RcptState};
pub(crate) use crate::error::QueueError;
pub(crate) use crate::etrn::EtrnRelease;
pub(crate) use crate::space::available;
pub(crate) use crate::store::{QueueCounts, Store};
pub(crate) use crate::time::now_unix;
pub(crate) use crate::{BroadcastEntry, FaxRecord};
use std::future::Future;
use std::path::Path;

/// Opens the store under test on a directory.
pub(crate) type Opener = fn(&Path) -> Store;

/// Starts what the backend needs (a database server) for a test on a
/// directory; what it returns lives as long as the test.
pub(crate) type Setup = fn(&Path) -> Box<dyn std::any::Any + Send>;

/// The backend under test, on a fresh directory.
pub(crate) struct Backend {
    open: Opener,
    _peer: Option<Box<dyn std::any::Any + Send>>,
    pub dir: tempfile::TempDir,
}

impl Backend {
    /// Open the store (again).
    pub fn open(&self) -> Store {
        (self.open)(self.dir.path())
    }
}

/// Run one test on a runtime of its own (two worker threads: the
/// blocking calls of the store meet an async caller as in the server).
pub(crate) fn run<F, Fut>(open: Opener, setup: Option<Setup>, test: F)
where
    F: FnOnce(Backend) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().expect("a temporary directory");
    let backend = Backend {
        _peer: setup.map(|setup| setup(dir.path())),
        dir,
        open,
    };
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(test(backend));
}

/// A blocking call of the store, on a blocking thread.
pub(crate) async fn blocking<T: Send + 'static>(
    store: &Store,
    call: impl FnOnce(&Store) -> T + Send + 'static,
) -> T {
    let store = store.clone();
    tokio::task::spawn_blocking(move || call(&store))
        .await
        .expect("the blocking call panicked")
}

/// A message from sender@example.org to `rcpts`.
pub(crate) fn message(rcpts: &[&str]) -> NewMessage {
    NewMessage {
        sender: "sender@example.org".into(),
        recipients: rcpts.iter().map(|r| NewRecipient::new(*r)).collect(),
        ..Default::default()
    }
}

/// One `#[test]` per test of the suite, in a module named for the
/// backend that `$open` opens.
macro_rules! backend_tests {
    ($backend:ident, $open:expr) => {
        backend_tests!($backend, $open, None);
    };
    ($backend:ident, $open:expr, $setup:expr) => {
        mod $backend {
            backend_tests!(@each $open, $setup;
                admin::hold_release_and_flush,
                admin::flush_by_domain_wakes_only_that_domain_and_not_held_mail,
                admin::etrn_releases_its_domains_only_and_counts_messages,
                admin::etrn_is_answered_from_the_index_before_the_release_and_after_reopen,
                admin::etrn_releases_addresses_in_any_case_and_form,
                enqueue::enqueue_survives_reopen,
                enqueue::concurrent_enqueues_all_land,
                enqueue::finished_messages_leave_the_queue,
                enqueue::an_address_with_a_control_character_is_never_stored,
                enqueue::a_streamed_body_is_committed_with_its_head_and_an_aborted_one_leaves_nothing,
                enqueue::room_is_checked_against_the_reserve,
                enqueue::envelopes_stream_in_id_order_and_raw_is_one_line,
                enqueue::the_message_count_follows_the_queue_and_survives_reopen,
                faxlog::fax_history_is_searched_newest_first_a_page_at_a_time,
                faxlog::received_faxes_are_searched_by_recipient_and_pruned,
                faxlog::usage_rows_are_read_by_period_once_each_and_pruned,
                faxlog::documents_are_kept_replaced_and_pruned_by_age,
                records::kept_in_order_limited_and_pruned,
                records::failures_are_remembered_and_forgotten,
                records::a_broadcast_names_its_transactions,
                records::old_broadcasts_are_pruned_unless_their_message_is_queued,
                schedule::postponing_moves_only_the_index,
                schedule::a_leased_message_is_handed_out_once_until_its_lease_ends,
            );
        }
    };
    (@each $open:expr, $setup:expr; $($module:ident :: $test:ident),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                $crate::tests::run($open, $setup, $crate::tests::$module::$test);
            }
        )*
    };
}

backend_tests!(sled, |dir| crate::Store::open(dir)
    .expect("the sled store opens"));
backend_tests!(
    postgres,
    crate::tests::pg::open,
    Some(crate::tests::pg::start)
);
