//! A "billion laughs" flow — 500 bytes whose aliases expand to 10^8 values — used to take
//! gigabytes and abort. Checking it now stops at the loader's budget and stays under 100 MiB,
//! measured by a counting allocator (this file holds one test, so nothing else allocates).

use flowrun::flow::{Source, check_source};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(now, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[test]
fn an_alias_bomb_is_refused_within_100_mib() {
    let mut text = String::from("version: 1\nname: bomb\n");
    text.push_str("x-a: &a [\"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\"]\n");
    for (name, prev) in ["b", "c", "d", "e", "f", "g", "h", "i"]
        .iter()
        .zip(["a", "b", "c", "d", "e", "f", "g", "h"])
    {
        let items = vec![format!("*{prev}"); 10].join(", ");
        text.push_str(&format!("x-{name}: &{name} [{items}]\n"));
    }
    assert!(text.len() < 600, "{}", text.len());
    let source = Source::new("bomb.yaml", text);
    let before = CURRENT.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let diagnostics = check_source(&source);
    let used = PEAK.load(Ordering::Relaxed) - before;
    eprintln!("checking the alias bomb took at most {} KiB", used / 1024);
    assert!(used < 100 * 1024 * 1024, "peak {} MiB", used / 1024 / 1024);
    let first = diagnostics[0].render(&source);
    assert!(
        first.starts_with("bomb.yaml:8:10: error: this alias expands the document past 200000 values\n"),
        "{first}"
    );
}
