//! Typed producers and consumers: a [`Schema`] (from `pulsar-schema`) encodes the values sent and
//! decodes the messages received, and is declared to the broker on `PRODUCER` / `SUBSCRIBE`.
//!
//! A message that does not decode gives a [`TypedMessage`] whose [`value`](TypedMessage::value)
//! is the [`SchemaError`]: the consumer goes on (acknowledge it, or negatively acknowledge it to
//! send it to a dead-letter topic). Messages written under another version of the topic's schema
//! are read with that version's schema when the kind needs it (Avro resolution, AUTO_CONSUME): the
//! consumer fetches it from the registry once per topic and version and keeps the decoder.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use futures::Stream;
use pulsar_core::{Message, MessageId, OutgoingMessage, SchemaType, SchemaVersion};
use pulsar_schema::{Decoder, Schema, SchemaError};

use crate::client::ClientHandle;
use crate::consumer::{Consumer, ConsumerBuilder, Reader, ReaderBuilder};
use crate::error::Error;
use crate::producer::{Producer, ProducerBuilder, Receipt};

/// Builds a [`TypedProducer`]: [`ProducerBuilder::schema`].
#[derive(Debug)]
#[must_use]
pub struct TypedProducerBuilder<S> {
    inner: ProducerBuilder,
    schema: Arc<S>,
}

impl<S: Schema> TypedProducerBuilder<S> {
    pub(crate) fn new(inner: ProducerBuilder, schema: S) -> Self {
        let info = schema.info().clone();
        TypedProducerBuilder {
            inner: inner.configure(|o| o.schema = Some(info)),
            schema: Arc::new(schema),
        }
    }

    /// Changes the untyped builder's settings (name, batching, compression, ...).
    pub fn configure(mut self, f: impl FnOnce(ProducerBuilder) -> ProducerBuilder) -> Self {
        self.inner = f(self.inner);
        self
    }

    /// Creates the producer and waits until the broker registered it with its schema (an
    /// incompatible schema fails with [`pulsar_core::Error::IncompatibleSchema`]).
    pub async fn create(self) -> Result<TypedProducer<S>, Error> {
        Ok(TypedProducer {
            inner: self.inner.create().await?,
            schema: self.schema,
        })
    }
}

/// A producer of values encoded with a schema. The untyped API stays reachable through
/// [`producer`](Self::producer).
#[derive(Debug)]
pub struct TypedProducer<S> {
    inner: Producer,
    schema: Arc<S>,
}

impl<S: Schema> TypedProducer<S> {
    /// The schema.
    pub fn schema(&self) -> &S {
        &self.schema
    }

    /// The untyped producer (flush, stats, sending bytes already encoded).
    pub fn producer(&self) -> &Producer {
        &self.inner
    }

    /// The message for `value`: its payload, and for a SEPARATED key-value schema its key.
    /// Set a key, properties or an event time on it, then [`send_message`](Self::send_message).
    pub fn message(&self, value: &S::Value) -> Result<OutgoingMessage, Error> {
        let (payload, key) = self.schema.encode_message(value)?;
        let message = OutgoingMessage::new(payload);
        Ok(match key {
            Some(key) => message.with_key_bytes(&key),
            None => message,
        })
    }

    /// Encodes `value`, sends it and waits for the broker's receipt.
    pub async fn send(&self, value: &S::Value) -> Result<MessageId, Error> {
        let message = self.message(value)?;
        self.inner.send(message).await
    }

    /// Encodes `value` and queues it without waiting for the broker (see
    /// [`Producer::send_async`]).
    pub async fn send_async(&self, value: &S::Value) -> Result<Receipt, Error> {
        let message = self.message(value)?;
        self.inner.send_async(message).await
    }

    /// Sends a message built with [`message`](Self::message).
    pub async fn send_message(&self, message: OutgoingMessage) -> Result<MessageId, Error> {
        self.inner.send(message).await
    }

    /// Waits until every message sent so far is acknowledged.
    pub async fn flush(&self) -> Result<(), Error> {
        self.inner.flush().await
    }

    /// Closes the producer.
    pub async fn close(self) -> Result<(), Error> {
        self.inner.close().await
    }
}

/// Builds a [`TypedConsumer`]: [`ConsumerBuilder::schema`].
#[derive(Debug)]
#[must_use]
pub struct TypedConsumerBuilder<S> {
    inner: ConsumerBuilder,
    schema: Arc<S>,
}

impl<S: Schema> TypedConsumerBuilder<S> {
    pub(crate) fn new(inner: ConsumerBuilder, schema: S) -> Self {
        let info = schema.info().clone();
        TypedConsumerBuilder {
            inner: inner.configure(|o| o.schema = Some(info)),
            schema: Arc::new(schema),
        }
    }

    /// Changes the untyped builder's settings (subscription, type, position, ...).
    pub fn configure(mut self, f: impl FnOnce(ConsumerBuilder) -> ConsumerBuilder) -> Self {
        self.inner = f(self.inner);
        self
    }

    /// Subscribes with the schema and waits until the broker registered the consumer (an
    /// incompatible schema fails with [`pulsar_core::Error::IncompatibleSchema`]).
    pub async fn subscribe(self) -> Result<TypedConsumer<S>, Error> {
        let inner = self.inner.subscribe().await?;
        Ok(TypedConsumer {
            decoding: Decoding::new(inner.client_handle(), self.schema),
            inner,
        })
    }
}

/// Decoders by (topic, schema version); `None`: the schema's own decoding reads that version.
type DecoderCache<T> = HashMap<(Arc<str>, Bytes), Option<Arc<dyn Decoder<T>>>>;

/// A consumer of values decoded with a schema. The untyped consumer (acknowledgements, seek,
/// ...) is [`consumer`](Self::consumer).
pub struct TypedConsumer<S: Schema> {
    inner: Consumer,
    decoding: Decoding<S>,
}

impl<S: Schema> std::fmt::Debug for TypedConsumer<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypedConsumer")
            .field("inner", &self.inner)
            .field("schema", &self.decoding.schema.info())
            .finish_non_exhaustive()
    }
}

impl<S: Schema> TypedConsumer<S> {
    /// The untyped consumer: acknowledge with `consumer().ack(&message.message)`.
    pub fn consumer(&self) -> &Consumer {
        &self.inner
    }

    /// The schema.
    pub fn schema(&self) -> &S {
        &self.decoding.schema
    }

    /// The next message and its decoded value (or why it did not decode). Fails only as
    /// [`Consumer::receive`] does.
    pub async fn receive(&self) -> Result<TypedMessage<S::Value>, Error> {
        let message = self.inner.receive().await?;
        Ok(self.decoding.typed(message).await)
    }

    /// Acknowledges a message.
    pub fn ack(&self, message: &TypedMessage<S::Value>) -> Result<(), Error> {
        self.inner.ack(&message.message)
    }

    /// Negatively acknowledges a message (redelivered later, or sent to the dead-letter topic).
    pub fn nack(&self, message: &TypedMessage<S::Value>) -> Result<(), Error> {
        self.inner.nack(&message.message)
    }

    /// The messages as a stream of [`TypedMessage`]s, ending when the consumer does.
    pub fn stream(&self) -> impl Stream<Item = Result<TypedMessage<S::Value>, Error>> + '_ {
        futures::stream::unfold(self, |c| async move {
            match c.receive().await {
                Ok(m) => Some((Ok(m), c)),
                Err(e) if e.is_closed() => None,
                Err(e) => Some((Err(e), c)),
            }
        })
    }

    /// Closes the consumer.
    pub async fn close(self) -> Result<(), Error> {
        self.inner.close().await
    }
}

/// Builds a [`TypedReader`]: [`ReaderBuilder::schema`].
#[derive(Debug)]
#[must_use]
pub struct TypedReaderBuilder<S> {
    inner: ReaderBuilder,
    schema: Arc<S>,
}

impl<S: Schema> TypedReaderBuilder<S> {
    /// Changes the untyped builder's settings (start, queue size, ...).
    pub fn configure(mut self, f: impl FnOnce(ReaderBuilder) -> ReaderBuilder) -> Self {
        self.inner = f(self.inner);
        self
    }

    /// Creates the reader with the schema and waits until the broker registered it.
    pub async fn create(self) -> Result<TypedReader<S>, Error> {
        let inner = self.inner.create().await?;
        Ok(TypedReader {
            decoding: Decoding::new(inner.client_handle(), self.schema),
            inner,
        })
    }
}

/// A reader of values decoded with a schema (see [`TypedConsumer`] for the decoding).
pub struct TypedReader<S: Schema> {
    inner: Reader,
    decoding: Decoding<S>,
}

impl<S: Schema> std::fmt::Debug for TypedReader<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypedReader")
            .field("inner", &self.inner)
            .field("schema", &self.decoding.schema.info())
            .finish_non_exhaustive()
    }
}

impl<S: Schema> TypedReader<S> {
    /// The untyped reader (seek, has_message_available, ...).
    pub fn reader(&self) -> &Reader {
        &self.inner
    }

    /// The schema.
    pub fn schema(&self) -> &S {
        &self.decoding.schema
    }

    /// The next message and its decoded value (or why it did not decode).
    pub async fn receive(&self) -> Result<TypedMessage<S::Value>, Error> {
        let message = self.inner.receive().await?;
        Ok(self.decoding.typed(message).await)
    }

    /// Closes the reader.
    pub async fn close(self) -> Result<(), Error> {
        self.inner.close().await
    }
}

/// Decodes messages with a schema, with the decoders of other schema versions fetched and kept.
pub(crate) struct Decoding<S: Schema> {
    client: ClientHandle,
    schema: Arc<S>,
    decoders: Mutex<DecoderCache<S::Value>>,
}

impl<S: Schema> Decoding<S> {
    pub(crate) fn new(client: ClientHandle, schema: Arc<S>) -> Self {
        Decoding {
            client,
            schema,
            decoders: Mutex::new(HashMap::new()),
        }
    }

    /// The message with its decoded value.
    async fn typed(&self, message: Message) -> TypedMessage<S::Value> {
        let value = self.decode(&message).await;
        TypedMessage { message, value }
    }

    /// Decodes one message, fetching the schema of its version first when needed.
    pub(crate) async fn decode(&self, message: &Message) -> Result<S::Value, SchemaError> {
        // only key-value schemas (and AUTO_CONSUME, which may meet one) read the key
        let key = match self.schema.info().kind {
            SchemaType::KeyValue | SchemaType::AutoConsume => message.key_bytes(),
            _ => None,
        };
        let version = match &message.schema_version {
            Some(v) if self.schema.uses_writer_schema() && !v.is_empty() => v,
            _ => return self.schema.decode_message(&message.payload, key.as_deref()),
        };
        let decoder = match self.cached(&message.topic, version) {
            Some(d) => d,
            None => self.fetch_decoder(&message.topic, version).await?,
        };
        match decoder {
            Some(d) => d.decode_message(&message.payload, key.as_deref()),
            None => self.schema.decode_message(&message.payload, key.as_deref()),
        }
    }

    fn cached(
        &self,
        topic: &Arc<str>,
        version: &Bytes,
    ) -> Option<Option<Arc<dyn Decoder<S::Value>>>> {
        let cache = self.decoders.lock().unwrap_or_else(PoisonError::into_inner);
        cache.get(&(Arc::clone(topic), version.clone())).cloned()
    }

    /// Fetches the schema of `version` and keeps its decoder.
    async fn fetch_decoder(
        &self,
        topic: &Arc<str>,
        version: &Bytes,
    ) -> Result<Option<Arc<dyn Decoder<S::Value>>>, SchemaError> {
        let fetched = self
            .client
            .get_schema(topic, Some(SchemaVersion(version.clone())))
            .await
            .map_err(|e| SchemaError::Fetch {
                version: version.clone(),
                reason: e.to_string(),
            })?;
        let writer = fetched.ok_or_else(|| SchemaError::UnknownVersion(version.clone()))?;
        let decoder = self.schema.writer_decoder(&writer.info)?;
        let mut cache = self.decoders.lock().unwrap_or_else(PoisonError::into_inner);
        cache.insert((Arc::clone(topic), version.clone()), decoder.clone());
        Ok(decoder)
    }
}

/// A received message and its decoded value.
#[derive(Debug, Clone)]
pub struct TypedMessage<T> {
    /// The message (payload, id, key, properties, schema version, ...).
    pub message: Message,
    /// The decoded value, or why the payload did not decode.
    pub value: Result<T, SchemaError>,
}

impl<T> TypedMessage<T> {
    /// The decoded value, or why the payload did not decode (the error is cloned so that `?`
    /// converts it into [`Error::Schema`]).
    pub fn value(&self) -> Result<&T, SchemaError> {
        self.value.as_ref().map_err(Clone::clone)
    }

    /// The decoded value, taken.
    pub fn into_value(self) -> Result<T, SchemaError> {
        self.value
    }

    /// The message id.
    pub fn id(&self) -> MessageId {
        self.message.id
    }
}

impl ProducerBuilder {
    /// Makes a producer of values with `schema` (declared on `PRODUCER`; `send(&value)` encodes).
    pub fn schema<S: Schema>(self, schema: S) -> TypedProducerBuilder<S> {
        TypedProducerBuilder::new(self, schema)
    }

    /// Creates an AUTO_PRODUCE_BYTES producer: it declares the topic's latest schema (fetched
    /// from the registry; none when the topic has none) and checks every payload against it
    /// before sending, as the Java client's `Schema.AUTO_PRODUCE_BYTES()` does.
    #[cfg(feature = "json")]
    pub async fn create_auto_produce_bytes(self) -> Result<AutoProducer, Error> {
        let (client, topic) = self.target();
        let latest = client.get_schema(topic, None).await?;
        let (builder, validator) = match &latest {
            Some(s) if !matches!(s.info.kind, pulsar_core::SchemaType::Bytes) => {
                let validator = pulsar_schema::generic_decoder(&s.info)?;
                let info = s.info.clone();
                (self.configure(|o| o.schema = Some(info)), Some(validator))
            }
            _ => (self, None),
        };
        Ok(AutoProducer {
            inner: builder.create().await?,
            schema: latest,
            validator,
        })
    }
}

/// An AUTO_PRODUCE_BYTES producer: payloads already encoded for the topic's schema, checked
/// before they are sent ([`ProducerBuilder::create_auto_produce_bytes`]).
#[cfg(feature = "json")]
pub struct AutoProducer {
    inner: Producer,
    schema: Option<pulsar_core::VersionedSchema>,
    validator: Option<Arc<dyn Decoder<pulsar_schema::GenericValue>>>,
}

#[cfg(feature = "json")]
impl std::fmt::Debug for AutoProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AutoProducer")
            .field("inner", &self.inner)
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "json")]
impl AutoProducer {
    /// The topic's schema it declared (`None`: the topic had none, payloads are not checked).
    pub fn topic_schema(&self) -> Option<&pulsar_core::VersionedSchema> {
        self.schema.as_ref()
    }

    /// The untyped producer.
    pub fn producer(&self) -> &Producer {
        &self.inner
    }

    /// Checks `message` against the topic's schema (a [`SchemaError`] when it is not a valid
    /// value of it), then sends it and waits for the broker's receipt.
    pub async fn send(&self, message: impl crate::IntoMessage) -> Result<MessageId, Error> {
        let message = message.into_message();
        if let Some(v) = &self.validator {
            let key = message.key.as_deref().map(|k| {
                if message.key_is_base64 {
                    use base64::Engine as _;
                    base64::engine::general_purpose::STANDARD
                        .decode(k)
                        .unwrap_or_default()
                } else {
                    k.as_bytes().to_vec()
                }
            });
            v.decode_message(&message.payload, key.as_deref())?;
        }
        self.inner.send(message).await
    }

    /// Closes the producer.
    pub async fn close(self) -> Result<(), Error> {
        self.inner.close().await
    }
}

impl ConsumerBuilder {
    /// Makes a consumer of values with `schema` (declared on `SUBSCRIBE`; `receive()` decodes).
    pub fn schema<S: Schema>(self, schema: S) -> TypedConsumerBuilder<S> {
        TypedConsumerBuilder::new(self, schema)
    }
}

impl ReaderBuilder {
    /// Makes a reader of values with `schema` (declared on `SUBSCRIBE`; `receive()` decodes).
    pub fn schema<S: Schema>(self, schema: S) -> TypedReaderBuilder<S> {
        let info = schema.info().clone();
        TypedReaderBuilder {
            inner: self.configure(|o| o.schema = Some(info)),
            schema: Arc::new(schema),
        }
    }
}
