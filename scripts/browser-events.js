// The `events` module for the browser bundle (esbuild `alias: { events: … }` in scripts/build-browser.mjs).
// readable-stream (simple-peer's Duplex stream) does `require('events').EventEmitter` and calls it as an
// ES5 constructor (`Stream.call(this)`), so this is a function-style EventEmitter implementing exactly the
// surface Node streams use: on/addListener/prependListener/once/prependOnceListener/off/removeListener/
// removeAllListeners/emit/listeners/rawListeners/listenerCount/eventNames/setMaxListeners, with Node's
// semantics for an unhandled 'error' event (it throws) and listener snapshots during emit.

function listenersOf(emitter, type) {
  if (!emitter._events) emitter._events = Object.create(null);
  let list = emitter._events[type];
  if (!list) {
    list = [];
    emitter._events[type] = list;
  }
  return list;
}

function onceWrapper(emitter, type, listener) {
  const wrapped = function (...args) {
    emitter.removeListener(type, wrapped);
    return listener.apply(this, args);
  };
  wrapped.listener = listener;
  return wrapped;
}

function checkListener(listener) {
  if (typeof listener !== 'function') {
    throw new TypeError(`The "listener" argument must be of type Function. Received type ${typeof listener}`);
  }
}

export function EventEmitter() {
  if (!this._events || this._events === Object.getPrototypeOf(this)._events)
    this._events = Object.create(null);
  this._maxListeners = this._maxListeners || undefined;
}

EventEmitter.EventEmitter = EventEmitter;
EventEmitter.defaultMaxListeners = 10;
EventEmitter.listenerCount = (emitter, type) => emitter.listenerCount(type);

const proto = EventEmitter.prototype;
proto._events = undefined;
proto._maxListeners = undefined;

proto.setMaxListeners = function (n) {
  this._maxListeners = n;
  return this;
};
proto.getMaxListeners = function () {
  return this._maxListeners ?? EventEmitter.defaultMaxListeners;
};

proto.emit = function (type, ...args) {
  const list = this._events?.[type];
  if (!list || list.length === 0) {
    if (type === 'error') {
      const err = args[0];
      if (err instanceof Error) throw err;
      const wrapped = new Error(`Unhandled error. (${String(err)})`);
      wrapped.context = err;
      throw wrapped;
    }
    return false;
  }
  for (const listener of list.slice()) listener.apply(this, args);
  return true;
};

proto.addListener = function (type, listener) {
  checkListener(listener);
  if (this._events?.newListener) this.emit('newListener', type, listener.listener ?? listener);
  listenersOf(this, type).push(listener);
  return this;
};
proto.on = proto.addListener;

proto.prependListener = function (type, listener) {
  checkListener(listener);
  if (this._events?.newListener) this.emit('newListener', type, listener.listener ?? listener);
  listenersOf(this, type).unshift(listener);
  return this;
};

proto.once = function (type, listener) {
  checkListener(listener);
  return this.on(type, onceWrapper(this, type, listener));
};
proto.prependOnceListener = function (type, listener) {
  checkListener(listener);
  return this.prependListener(type, onceWrapper(this, type, listener));
};

proto.removeListener = function (type, listener) {
  checkListener(listener);
  const list = this._events?.[type];
  if (!list) return this;
  for (let i = list.length - 1; i >= 0; i--) {
    if (list[i] === listener || list[i].listener === listener) {
      list.splice(i, 1);
      if (list.length === 0) delete this._events[type];
      if (this._events.removeListener) this.emit('removeListener', type, listener);
      break;
    }
  }
  return this;
};
proto.off = proto.removeListener;

proto.removeAllListeners = function (type) {
  if (!this._events) return this;
  if (type === undefined) this._events = Object.create(null);
  else delete this._events[type];
  return this;
};

proto.listeners = function (type) {
  return (this._events?.[type] ?? []).map((l) => l.listener ?? l);
};
proto.rawListeners = function (type) {
  return (this._events?.[type] ?? []).slice();
};
proto.listenerCount = function (type) {
  return this._events?.[type]?.length ?? 0;
};
proto.eventNames = function () {
  return this._events ? Reflect.ownKeys(this._events) : [];
};

export default EventEmitter;
