//! TableView: the latest value of every key of a topic, kept current by a thread.

use std::collections::BTreeMap;
use std::thread;

use bytes::Bytes;
use pulsar_async::schema::Schema;
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
        follow(wait(self.inner.create_with_follower())?)
    }

    /// A view of values decoded with `schema` (see `pulsar_async::table_view`).
    pub fn schema<S: Schema>(self, schema: S) -> TypedTableViewBuilder<S> {
        TypedTableViewBuilder {
            inner: self.inner.schema(schema),
        }
    }
}

/// Builds a [`TableView`] of values decoded with a schema ([`TableViewBuilder::schema`]).
#[derive(Debug)]
#[must_use]
pub struct TypedTableViewBuilder<S> {
    inner: pulsar_async::TypedTableViewBuilder<S>,
}

impl<S: Schema> TypedTableViewBuilder<S>
where
    S::Value: Clone + Send + 'static,
{
    /// As [`TableViewBuilder::create`], with decoded values.
    pub fn create(self) -> Result<TableView<S::Value>, Error> {
        follow(wait(self.inner.create_with_follower())?)
    }
}

/// Runs the view's follower on a thread of its own and loads the topic.
fn follow<V: Clone + Send + 'static>(
    (view, follower): (pulsar_async::TableView<V>, pulsar_async::Follower),
) -> Result<TableView<V>, Error> {
    thread::Builder::new()
        .name("pulsar-table-view".into())
        .spawn(move || wait(follower))
        .map_err(|e| Error::Runtime(format!("cannot start the table view thread: {e}")))?;
    wait(view.refresh())?;
    Ok(TableView { inner: view })
}

/// The latest value of every key of a topic (see `pulsar_async::TableView`): the payloads, or
/// with a schema the decoded values. Dropping it stops its thread and closes the reader.
#[derive(Debug)]
pub struct TableView<V = Bytes> {
    inner: pulsar_async::TableView<V>,
}

impl<V: Clone + Send + 'static> TableView<V> {
    /// The topic.
    pub fn topic(&self) -> &str {
        self.inner.topic()
    }

    /// The latest value of `key`.
    pub fn get(&self, key: &str) -> Option<V> {
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
    pub fn entries(&self) -> BTreeMap<String, V> {
        self.inner.entries()
    }

    /// Messages whose value did not decode with the view's schema (0 without a schema).
    pub fn decode_failures(&self) -> u64 {
        self.inner.decode_failures()
    }

    /// Calls `listener` with every later update (`None`: the key was deleted), from the view's
    /// thread. It must not call back into this view.
    pub fn listen(&self, listener: impl FnMut(&str, Option<&V>) + Send + 'static) {
        self.inner.listen(listener);
    }

    /// Calls `listener` with every key and value now, then with every later update.
    pub fn for_each_and_listen(&self, listener: impl FnMut(&str, Option<&V>) + Send + 'static) {
        self.inner.for_each_and_listen(listener);
    }

    /// Blocks until the view holds everything the topic holds now.
    pub fn refresh(&self) -> Result<(), Error> {
        wait(self.inner.refresh())
    }
}
