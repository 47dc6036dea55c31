//! Prints the frames of a stored capture (`cargo run -p pulsar-tests --example dump_corpus DIR`).
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).ok_or("usage: dump_corpus DIR")?;
    let connections = pulsar_tests::golden::read_corpus(std::path::Path::new(&dir))?;
    for (i, c) in connections.iter().enumerate() {
        for (side, bytes) in [
            ("client", &c.client_to_broker),
            ("broker", &c.broker_to_client),
        ] {
            for f in pulsar_tests::golden::split_frames(bytes)? {
                let payload = f.frame.payload.as_ref().map(|p| p.data.len());
                println!(
                    "conn {i} {side:6} @{:5} {:4} bytes {:?} payload={payload:?}",
                    f.offset,
                    f.raw.len(),
                    f.kind()
                );
            }
        }
    }
    Ok(())
}
