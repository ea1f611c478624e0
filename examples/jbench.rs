use flowrun::journal::{SqliteStore, Store, Write};
use serde_json::json;
fn main() {
    let path = std::env::args().nth(1).unwrap();
    let s = SqliteStore::open(&path).unwrap();
    let request = json!({"method": "POST", "url": "http://127.0.0.1:18795/api/v1/interactions", "headers": [["OrgId","00D000000000001"],["AuthorizationContext","Partner_Channel"],["RequestId","f41eca1a-134c-428d-9bf4-fe56b797eef8"]], "body": {"json": {"to": "+15550100", "from": "+15550123", "interactions": [{"timestamp": 1795491244121u64, "interactionType": "EntryInteraction", "payload": {"id": "03af7df1-9e22-4d58-b543-d2b11c0959b2", "entryType": "Message", "abstractMessage": {"messageType": "StaticContentMessage", "id": "03af7df1-9e22-4d58-b543-d2b11c0959b2", "staticContent": {"formatType": "Text", "text": "Hi, I need help with my order"}}}}]}}});
    for per_tx in [1usize, 10, 100] {
        let n = 3000;
        let t = std::time::Instant::now();
        let mut i = 0;
        while i < n {
            let writes: Vec<Write> = (0..per_tx)
                .map(|k| Write::AttemptSent {
                    run: uuid::Uuid::now_v7().to_string(),
                    step: "interaction".into(),
                    phase: "steps",
                    number: (k + 1) as u32,
                    request: request.clone(),
                    at_ms: 1,
                })
                .collect();
            let groups: Vec<&[Write]> = writes.iter().map(std::slice::from_ref).collect();
            s.apply(&groups);
            i += per_tx;
        }
        println!("{per_tx} writes per tx: {:?} per write", t.elapsed() / n as u32);
    }
}
