//! Peak memory of the `epp` binary for a body sent one byte per message: one growing
//! buffer, not hundreds of bytes per chunk (measured +1.4 MiB for 300 KB; before the
//! growing buffer, +102 MiB and 300,000 replies). Its own process, so the test client's
//! memory does not count. `--nocapture` prints the figures.

use epp_testkit::ExtProcStream;
use epp_testkit::messages::*;
use epp_testkit::procfs::peak_rss_kib_of;
use epp_testkit::stream::client;

use super::RunningBinary;

const BODY_BYTES: usize = 300_000;

#[tokio::test]
async fn a_300_kb_body_in_one_byte_chunks_costs_a_few_mib_and_five_replies() {
    let mut epp = RunningBinary::start(&["--secure-serving=false"]);
    epp.wait_serving().await;
    let client = client(epp.ext_proc).await;
    let body = completion_body(
        "m",
        &"x".repeat(BODY_BYTES - completion_body("m", "").len()),
    );
    let mut stream = ExtProcStream::open(client).await;
    stream.start_full_duplex().await;
    let pid = epp.child.id();
    let before = peak_rss_kib_of(pid);
    stream.send_body_byte_by_byte(&body).await;
    let routed_to = destination(&stream.reply().await);
    assert!(routed_to.starts_with("127.0.0.1:1800"), "{routed_to}");
    let mut replies = 0;
    loop {
        replies += 1;
        let (_, end) = streamed(&stream.reply().await).expect("a replayed chunk");
        if end {
            break;
        }
    }
    let grew = peak_rss_kib_of(pid) - before;
    println!(
        "{BODY_BYTES}-byte body in 1-byte chunks: peak RSS +{grew} kB, {replies} body replies"
    );
    assert!(
        grew < 8 * 1024,
        "peak RSS grew by {grew} kB for a 300 KB body"
    );
    assert_eq!(replies, BODY_BYTES.div_ceil(62_000));
}
