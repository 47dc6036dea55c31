//! TableView: the latest value of every key of a topic (Java's `TableView`), kept current by a
//! reader of the compacted topic.
//!
//! One task (the [`Follower`]) owns the reader: it applies each message to the map (a
//! tombstone or an empty value deletes the key, as compaction does, and a message without a key
//! is skipped), calls the listeners, and answers [`TableView::refresh`] by reading everything the
//! broker has at that moment. Only it takes messages, so updates of a key apply in order.
//!
//! With a schema ([`TableViewBuilder::schema`]) the view holds decoded values: the follower
//! decodes each message as a `TypedReader` does (fetching the writer's schema of an older
//! version), and a message that does not decode leaves its key as it was; it is counted in
//! [`TableView::decode_failures`] and logged.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::channel::{mpsc, oneshot};
use futures::future::poll_fn;
use futures::{Stream, StreamExt};
use pulsar_core::{Message, MessageId, ReaderOptions};

use crate::client::ClientHandle;
use crate::consumer::{Reader, ReaderBuilder};
use crate::error::Error;
use crate::runtime::BoxFuture;
use crate::typed::Decoding;
use pulsar_schema::{Schema, SchemaError};

/// A listener of a [`TableView`]: the key and its new value (`None`: deleted).
type ListenerFn<V> = Box<dyn FnMut(&str, Option<&V>) + Send>;

/// How the follower turns a message into the view's value.
trait Values: Send + Sync + 'static {
    /// The view's values.
    type Value: Clone + Send + 'static;

    /// The message's value: `Ok(None)` deletes the key (a tombstone or an empty value, as
    /// compaction does), an error leaves it as it was.
    fn value(
        &self,
        m: &Message,
    ) -> impl Future<Output = Result<Option<Self::Value>, SchemaError>> + Send;
}

/// The payloads as they are.
struct Raw;

impl Values for Raw {
    type Value = Bytes;

    fn value(
        &self,
        m: &Message,
    ) -> impl Future<Output = Result<Option<Bytes>, SchemaError>> + Send {
        std::future::ready(Ok(m.value().filter(|v| !v.is_empty()).cloned()))
    }
}

impl<S: Schema> Values for Decoding<S>
where
    S::Value: Clone + Send + 'static,
{
    type Value = S::Value;

    fn value(
        &self,
        m: &Message,
    ) -> impl Future<Output = Result<Option<S::Value>, SchemaError>> + Send {
        let deleted = m.value().is_none_or(|v| v.is_empty());
        async move {
            if deleted {
                return Ok(None);
            }
            self.decode(m).await.map(Some)
        }
    }
}

/// Builds a [`TableView`]: a reader of the compacted topic from its start (every partition of a
/// partitioned topic).
#[derive(Debug)]
#[must_use]
pub struct TableViewBuilder {
    reader: ReaderBuilder,
}

impl TableViewBuilder {
    pub(crate) fn new(client: ClientHandle, topic: String) -> Self {
        let mut options = ReaderOptions::new(MessageId::EARLIEST);
        options.read_compacted = true;
        TableViewBuilder {
            reader: ReaderBuilder::new(client, topic).options(options),
        }
    }

    /// Receiver queue size of the reader.
    pub fn receiver_queue_size(mut self, n: u32) -> Self {
        self.reader = self.reader.receiver_queue_size(n);
        self
    }

    /// Changes any option of the reader (it starts at the earliest message and reads the
    /// compacted topic unless changed here).
    pub fn configure(mut self, f: impl FnOnce(&mut ReaderOptions)) -> Self {
        self.reader = self.reader.configure(f);
        self
    }

    /// Creates the view, reads what the topic holds now, and keeps the view current from a task
    /// on the client's runtime. Fails with [`Error::Unsupported`] on a client without an async
    /// runtime: use [`create_with_follower`](Self::create_with_follower) there.
    pub async fn create(self) -> Result<TableView, Error> {
        let reader = self.reader.create().await?;
        TableView::start(reader, Raw).await
    }

    /// A view of values decoded with `schema` (see the [module](self) documentation).
    pub fn schema<S: Schema>(self, schema: S) -> TypedTableViewBuilder<S> {
        TypedTableViewBuilder {
            reader: self.reader,
            schema: Arc::new(schema),
        }
    }

    /// Creates the view and returns it with the [`Follower`] that keeps it current, for the
    /// caller to run (on a thread, or a runtime of its own). The view is empty until the follower
    /// runs; [`TableView::refresh`] then loads what the topic holds.
    pub async fn create_with_follower(self) -> Result<(TableView, Follower), Error> {
        let reader = self.reader.create().await?;
        Ok(TableView::with_reader(reader, Raw))
    }
}

/// Builds a [`TableView`] of values decoded with a schema ([`TableViewBuilder::schema`]).
#[must_use]
pub struct TypedTableViewBuilder<S> {
    reader: ReaderBuilder,
    schema: Arc<S>,
}

impl<S> fmt::Debug for TypedTableViewBuilder<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypedTableViewBuilder")
            .field("reader", &self.reader)
            .finish_non_exhaustive()
    }
}

impl<S: Schema> TypedTableViewBuilder<S>
where
    S::Value: Clone + Send + 'static,
{
    /// As [`TableViewBuilder::create`], with decoded values.
    pub async fn create(self) -> Result<TableView<S::Value>, Error> {
        let reader = self.reader.create().await?;
        let decoding = Decoding::new(reader.client_handle(), self.schema);
        TableView::start(reader, decoding).await
    }

    /// As [`TableViewBuilder::create_with_follower`], with decoded values.
    pub async fn create_with_follower(self) -> Result<(TableView<S::Value>, Follower), Error> {
        let reader = self.reader.create().await?;
        let decoding = Decoding::new(reader.client_handle(), self.schema);
        Ok(TableView::with_reader(reader, decoding))
    }
}

/// The map and its listeners, shared by the view and its follower.
struct Table<V> {
    data: BTreeMap<String, V>,
    listeners: Vec<ListenerFn<V>>,
    decode_failures: u64,
}

/// A refresh request: answered once everything the broker had when it was handled is applied.
type Refresh = oneshot::Sender<Result<(), Error>>;

/// The latest value of every key of a topic (see the [module](self) documentation): the
/// payloads (`Bytes`), or with a schema the decoded values. Dropping it stops its follower and
/// closes the reader.
pub struct TableView<V = Bytes> {
    table: Arc<Mutex<Table<V>>>,
    refresh: mpsc::UnboundedSender<Refresh>,
    topic: String,
}

impl<V> fmt::Debug for TableView<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TableView")
            .field("topic", &self.topic)
            .field(
                "len",
                &self
                    .table
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .data
                    .len(),
            )
            .finish()
    }
}

impl<V: Clone + Send + 'static> TableView<V> {
    /// Starts the follower of `reader` on the client's runtime and loads the topic.
    async fn start<D: Values<Value = V>>(reader: Reader, values: D) -> Result<Self, Error> {
        let runtime = reader.runtime()?;
        let (view, follower) = TableView::with_reader(reader, values);
        runtime.spawn(Box::pin(follower)).map_err(Error::Runtime)?;
        view.refresh().await?;
        Ok(view)
    }

    fn with_reader<D: Values<Value = V>>(reader: Reader, values: D) -> (Self, Follower) {
        let table = Arc::new(Mutex::new(Table {
            data: BTreeMap::new(),
            listeners: Vec::new(),
            decode_failures: 0,
        }));
        let (tx, rx) = mpsc::unbounded();
        let topic = reader.topic().to_owned();
        let follower = Follower(Box::pin(follow(reader, table.clone(), rx, values)));
        (
            TableView {
                table,
                refresh: tx,
                topic,
            },
            follower,
        )
    }

    fn lock(&self) -> MutexGuard<'_, Table<V>> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The latest value of `key`.
    pub fn get(&self, key: &str) -> Option<V> {
        self.lock().data.get(key).cloned()
    }

    /// Whether `key` has a value.
    pub fn contains_key(&self, key: &str) -> bool {
        self.lock().data.contains_key(key)
    }

    /// The number of keys.
    pub fn len(&self) -> usize {
        self.lock().data.len()
    }

    /// Whether no key has a value.
    pub fn is_empty(&self) -> bool {
        self.lock().data.is_empty()
    }

    /// The keys, in order.
    pub fn keys(&self) -> Vec<String> {
        self.lock().data.keys().cloned().collect()
    }

    /// A copy of the whole map.
    pub fn entries(&self) -> BTreeMap<String, V> {
        self.lock().data.clone()
    }

    /// Messages whose value did not decode with the view's schema (their keys kept their
    /// previous values); always 0 without a schema.
    pub fn decode_failures(&self) -> u64 {
        self.lock().decode_failures
    }

    /// Calls `listener` with every later update (the key and its new value, `None` when
    /// deleted), from the follower. It must not call back into this view's listeners.
    pub fn listen(&self, listener: impl FnMut(&str, Option<&V>) + Send + 'static) {
        self.lock().listeners.push(Box::new(listener));
    }

    /// Calls `listener` with every key and value now, then with every later update.
    pub fn for_each_and_listen(&self, mut listener: impl FnMut(&str, Option<&V>) + Send + 'static) {
        let mut table = self.lock();
        for (k, v) in &table.data {
            listener(k, Some(v));
        }
        table.listeners.push(Box::new(listener));
    }

    /// Waits until the view holds everything the topic held when the follower took the request
    /// (Java's `refreshAsync`).
    pub async fn refresh(&self) -> Result<(), Error> {
        let (tx, rx) = oneshot::channel();
        self.refresh
            .unbounded_send(tx)
            .map_err(|_| Error::Client(pulsar_core::Error::Closed))?;
        rx.await
            .unwrap_or(Err(Error::Client(pulsar_core::Error::Closed)))
    }
}

/// The task that keeps a [`TableView`] current: it ends when the view is dropped or the reader
/// ends. [`TableViewBuilder::create`] spawns it; with
/// [`TableViewBuilder::create_with_follower`] the caller runs it.
#[must_use = "the view stays empty unless its follower runs"]
pub struct Follower(BoxFuture<()>);

impl fmt::Debug for Follower {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Follower")
    }
}

impl Future for Follower {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.0.as_mut().poll(cx)
    }
}

/// What the follower does next.
enum Step {
    Message(Box<Message>),
    Refresh(Refresh),
    End(Option<Error>),
}

async fn follow<D: Values>(
    mut reader: Reader,
    table: Arc<Mutex<Table<D::Value>>>,
    mut requests: mpsc::UnboundedReceiver<Refresh>,
    values: D,
) {
    loop {
        let step = poll_fn(|cx| {
            match Pin::new(&mut requests).poll_next(cx) {
                Poll::Ready(Some(r)) => return Poll::Ready(Step::Refresh(r)),
                // the view is gone
                Poll::Ready(None) => return Poll::Ready(Step::End(None)),
                Poll::Pending => {}
            }
            match Pin::new(&mut reader).poll_next(cx) {
                Poll::Ready(Some(Ok(m))) => Poll::Ready(Step::Message(Box::new(m))),
                Poll::Ready(Some(Err(e))) => Poll::Ready(Step::End(Some(e))),
                Poll::Ready(None) => Poll::Ready(Step::End(None)),
                Poll::Pending => Poll::Pending,
            }
        })
        .await;
        match step {
            Step::Message(m) => apply(&table, &m, &values).await,
            Step::Refresh(answer) => {
                let r = catch_up(&reader, &table, &values).await;
                let failed = r.is_err();
                let _ = answer.send(r);
                if failed {
                    break;
                }
            }
            Step::End(e) => {
                if let Some(e) = e {
                    tracing::debug!(topic = reader.topic(), error = %e, "table view ended");
                }
                break;
            }
        }
    }
    // later refreshes fail: the channel closes with the receiver
    requests.close();
    while let Some(answer) = requests.next().await {
        let _ = answer.send(Err(Error::Client(pulsar_core::Error::Closed)));
    }
    let _ = reader.close().await;
}

/// Reads and applies everything the broker has now.
async fn catch_up<D: Values>(
    reader: &Reader,
    table: &Arc<Mutex<Table<D::Value>>>,
    values: &D,
) -> Result<(), Error> {
    while reader.has_message_available().await? {
        let m = reader.receive().await?;
        apply(table, &m, values).await;
    }
    Ok(())
}

/// Applies one message: a tombstone or an empty value deletes its key (as compaction does), a
/// message without a key is skipped. The listeners run outside the lock.
async fn apply<D: Values>(table: &Arc<Mutex<Table<D::Value>>>, m: &Message, values: &D) {
    let Some(key) = m.key.as_deref() else {
        return;
    };
    let value = match values.value(m).await {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(topic = %m.topic, key, error = %e, "table view: a value did not decode");
            table
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .decode_failures += 1;
            return;
        }
    };
    let mut listeners = {
        let mut t = table.lock().unwrap_or_else(PoisonError::into_inner);
        match &value {
            Some(v) => {
                t.data.insert(key.to_owned(), v.clone());
            }
            None => {
                t.data.remove(key);
            }
        }
        std::mem::take(&mut t.listeners)
    };
    for l in &mut listeners {
        l(key, value.as_ref());
    }
    let mut t = table.lock().unwrap_or_else(PoisonError::into_inner);
    // (listeners added meanwhile come after the older ones)
    listeners.append(&mut t.listeners);
    t.listeners = listeners;
}
