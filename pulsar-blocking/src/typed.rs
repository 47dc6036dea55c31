//! Blocking typed producers and consumers: the async client's [`pulsar_async::TypedProducer`] and
//! [`pulsar_async::TypedConsumer`] with calls that block.

use std::time::Duration;

use pulsar_async::schema::Schema;
use pulsar_async::{Error, MessageId, OutgoingMessage, TypedMessage};

use crate::consumer::{ConsumerBuilder, ReaderBuilder};
use crate::producer::ProducerBuilder;
use crate::wait::{wait, wait_for};

impl ProducerBuilder {
    /// Makes a producer of values with `schema` (declared on `PRODUCER`; `send(&value)` encodes).
    ///
    /// ```no_run
    /// use pulsar_blocking::schema::{JsonSchema, Schema};
    /// use pulsar_blocking::{Client, InitialPosition};
    ///
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct User {
    ///     id: i64,
    /// }
    /// const USER: &str = r#"{"type":"record","name":"User","fields":[{"name":"id","type":"long"}]}"#;
    ///
    /// # fn main() -> Result<(), pulsar_blocking::Error> {
    /// let client = Client::builder("pulsar://127.0.0.1:6650").build()?;
    /// let producer = client.producer("users").schema(JsonSchema::<User>::new(USER)).create()?;
    /// producer.send(&User { id: 7 })?;
    /// let consumer = client
    ///     .consumer("users")
    ///     .subscription("s")
    ///     .initial_position(InitialPosition::Earliest)
    ///     .schema(JsonSchema::<User>::new(USER))
    ///     .subscribe()?;
    /// let message = consumer.receive()?;
    /// match message.value() {
    ///     Ok(user) => println!("user {}", user.id),
    ///     Err(e) => println!("message {:?} did not decode: {e}", message.id()),
    /// }
    /// consumer.ack(&message)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn schema<S: Schema>(self, schema: S) -> TypedProducerBuilder<S> {
        TypedProducerBuilder {
            inner: self.into_async().schema(schema),
        }
    }

    /// Creates an AUTO_PRODUCE_BYTES producer, blocking until the broker registered it: it
    /// declares the topic's schema and checks every payload against it before sending.
    pub fn create_auto_produce_bytes(self) -> Result<AutoProducer, Error> {
        wait(self.into_async().create_auto_produce_bytes()).map(|inner| AutoProducer { inner })
    }
}

impl ConsumerBuilder {
    /// Makes a consumer of values with `schema` (declared on `SUBSCRIBE`; `receive()` decodes).
    pub fn schema<S: Schema>(self, schema: S) -> TypedConsumerBuilder<S> {
        TypedConsumerBuilder {
            inner: self.into_async().schema(schema),
        }
    }
}

impl ReaderBuilder {
    /// Makes a reader of values with `schema` (declared on `SUBSCRIBE`; `receive()` decodes).
    pub fn schema<S: Schema>(self, schema: S) -> TypedReaderBuilder<S> {
        TypedReaderBuilder {
            inner: self.into_async().schema(schema),
        }
    }
}

/// Builds a [`TypedReader`].
#[derive(Debug)]
#[must_use]
pub struct TypedReaderBuilder<S> {
    inner: pulsar_async::TypedReaderBuilder<S>,
}

impl<S: Schema> TypedReaderBuilder<S> {
    /// Creates the reader, blocking until the broker registered it.
    pub fn create(self) -> Result<TypedReader<S>, Error> {
        wait(self.inner.create()).map(|inner| TypedReader { inner })
    }
}

/// A reader of values decoded with a schema, whose receives block.
#[derive(Debug)]
pub struct TypedReader<S: Schema> {
    inner: pulsar_async::TypedReader<S>,
}

impl<S: Schema> TypedReader<S> {
    /// The next message and its value, blocking until one arrives.
    pub fn receive(&self) -> Result<TypedMessage<S::Value>, Error> {
        wait(self.inner.receive())
    }

    /// The next message and its value, blocking at most `timeout` (`Ok(None)`: none came).
    pub fn receive_timeout(
        &self,
        timeout: Duration,
    ) -> Result<Option<TypedMessage<S::Value>>, Error> {
        wait_for(self.inner.receive(), timeout).transpose()
    }

    /// Closes the reader.
    pub fn close(self) -> Result<(), Error> {
        wait(self.inner.close())
    }
}

/// Builds a [`TypedProducer`].
#[derive(Debug)]
#[must_use]
pub struct TypedProducerBuilder<S> {
    inner: pulsar_async::TypedProducerBuilder<S>,
}

impl<S: Schema> TypedProducerBuilder<S> {
    /// Creates the producer, blocking until the broker registered it with its schema.
    pub fn create(self) -> Result<TypedProducer<S>, Error> {
        wait(self.inner.create()).map(|inner| TypedProducer { inner })
    }
}

/// A producer of values encoded with a schema, whose sends block.
#[derive(Debug)]
pub struct TypedProducer<S> {
    inner: pulsar_async::TypedProducer<S>,
}

impl<S: Schema> TypedProducer<S> {
    /// The message for `value` (payload, and key for a SEPARATED key-value schema).
    pub fn message(&self, value: &S::Value) -> Result<OutgoingMessage, Error> {
        self.inner.message(value)
    }

    /// Encodes and sends `value`, blocking until the broker's receipt.
    pub fn send(&self, value: &S::Value) -> Result<MessageId, Error> {
        wait(self.inner.send(value))
    }

    /// Sends a message built with [`message`](Self::message).
    pub fn send_message(&self, message: OutgoingMessage) -> Result<MessageId, Error> {
        wait(self.inner.send_message(message))
    }

    /// Blocks until every message sent so far is acknowledged.
    pub fn flush(&self) -> Result<(), Error> {
        wait(self.inner.flush())
    }

    /// Closes the producer.
    pub fn close(self) -> Result<(), Error> {
        wait(self.inner.close())
    }
}

/// Builds a [`TypedConsumer`].
#[derive(Debug)]
#[must_use]
pub struct TypedConsumerBuilder<S> {
    inner: pulsar_async::TypedConsumerBuilder<S>,
}

impl<S: Schema> TypedConsumerBuilder<S> {
    /// Subscribes with the schema, blocking until the broker registered the consumer.
    pub fn subscribe(self) -> Result<TypedConsumer<S>, Error> {
        wait(self.inner.subscribe()).map(|inner| TypedConsumer { inner })
    }
}

/// A consumer of values decoded with a schema, whose receives block. A message that does not
/// decode comes with its error in [`TypedMessage::value`]; the consumer goes on.
#[derive(Debug)]
pub struct TypedConsumer<S: Schema> {
    inner: pulsar_async::TypedConsumer<S>,
}

impl<S: Schema> TypedConsumer<S> {
    /// The next message and its value, blocking until one arrives.
    pub fn receive(&self) -> Result<TypedMessage<S::Value>, Error> {
        wait(self.inner.receive())
    }

    /// The next message and its value, blocking at most `timeout` (`Ok(None)`: none came).
    pub fn receive_timeout(
        &self,
        timeout: Duration,
    ) -> Result<Option<TypedMessage<S::Value>>, Error> {
        wait_for(self.inner.receive(), timeout).transpose()
    }

    /// Acknowledges a message.
    pub fn ack(&self, message: &TypedMessage<S::Value>) -> Result<(), Error> {
        self.inner.ack(message)
    }

    /// Negatively acknowledges a message.
    pub fn nack(&self, message: &TypedMessage<S::Value>) -> Result<(), Error> {
        self.inner.nack(message)
    }

    /// Closes the consumer.
    pub fn close(self) -> Result<(), Error> {
        wait(self.inner.close())
    }
}

/// An AUTO_PRODUCE_BYTES producer whose sends block.
#[derive(Debug)]
pub struct AutoProducer {
    inner: pulsar_async::AutoProducer,
}

impl AutoProducer {
    /// The topic's schema it declared (`None`: the topic had none).
    pub fn topic_schema(&self) -> Option<&pulsar_async::core::VersionedSchema> {
        self.inner.topic_schema()
    }

    /// Checks `message` against the topic's schema, then sends it and blocks until the receipt.
    pub fn send(&self, message: impl pulsar_async::IntoMessage) -> Result<MessageId, Error> {
        wait(self.inner.send(message))
    }

    /// Closes the producer.
    pub fn close(self) -> Result<(), Error> {
        wait(self.inner.close())
    }
}
