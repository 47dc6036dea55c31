//! TableView: the latest value of every key of a topic, kept current by a thread.

use std::collections::BTreeMap;
use std::thread;

use bytes::Bytes;
use pulsar_async::{Error, ReaderOptions};

use crate::wait::wait;

/// Builds a [`TableView`] (a reader of the compacted topic from its start).
#[derive(Debug)]
#[must_use]
pub struct TableViewBuilder {
    inner: pulsar_async::TableViewBuilder,
}

impl TableViewBuilder {
    pub(crate) fn new(inner: pulsar_async::TableViewBuilder) -> Self {
        TableViewBuilder { inner }
    }

    /// Receiver queue size of the reader.
    pub fn receiver_queue_size(self, n: u32) -> Self {
        TableViewBuilder {
            inner: self.inner.receiver_queue_size(n),
        }
    }

    /// Changes any option of the reader.
    pub fn configure(self, f: impl FnOnce(&mut ReaderOptions)) -> Self {
        TableViewBuilder {
            inner: self.inner.configure(f),
        }
    }

    /// Creates the view, reads what the topic holds now (blocking), and keeps the view current
    /// from a thread of its own (which ends with the view).
    pub fn create(self) -> Result<TableView, Error> {
        let (view, follower) = wait(self.inner.create_with_follower())?;
        thread::Builder::new()
            .name("pulsar-table-view".into())
            .spawn(move || wait(follower))
            .map_err(|e| Error::Runtime(format!("cannot start the table view thread: {e}")))?;
        wait(view.refresh())?;
        Ok(TableView { inner: view })
    }
}

/// The latest value of every key of a topic (see `pulsar_async::TableView`). Dropping it stops
/// its thread and closes the reader.
#[derive(Debug)]
pub struct TableView {
    inner: pulsar_async::TableView,
}

impl TableView {
    /// The topic.
    pub fn topic(&self) -> &str {
        self.inner.topic()
    }

    /// The latest value of `key`.
    pub fn get(&self, key: &str) -> Option<Bytes> {
        self.inner.get(key)
    }

    /// Whether `key` has a value.
    pub fn contains_key(&self, key: &str) -> bool {
        self.inner.contains_key(key)
    }

    /// The number of keys.
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// Whether no key has a value.
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// The keys, in order.
    pub fn keys(&self) -> Vec<String> {
        self.inner.keys()
    }

    /// A copy of the whole map.
    pub fn entries(&self) -> BTreeMap<String, Bytes> {
        self.inner.entries()
    }

    /// Calls `listener` with every later update (`None`: the key was deleted), from the view's
    /// thread. It must not call back into this view.
    pub fn listen(&self, listener: impl FnMut(&str, Option<&Bytes>) + Send + 'static) {
        self.inner.listen(listener);
    }

    /// Calls `listener` with every key and value now, then with every later update.
    pub fn for_each_and_listen(&self, listener: impl FnMut(&str, Option<&Bytes>) + Send + 'static) {
        self.inner.for_each_and_listen(listener);
    }

    /// Blocks until the view holds everything the topic holds now.
    pub fn refresh(&self) -> Result<(), Error> {
        wait(self.inner.refresh())
    }
}
