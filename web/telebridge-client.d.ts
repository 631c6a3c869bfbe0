/*
 * telebridge-client.d.ts — types of telebridge-client.js for TypeScript users. The protocol is
 * docs/protocol.md; docs/react.md builds a React hook on it.
 *
 *   import { TelebridgeClient } from "./telebridge-client.js";
 *   const tb = new TelebridgeClient({ url: "wss://bridge.example/ws", getToken: async () => jwt });
 *   tb.addEventListener("telemetry", (e) => e.detail.payload.fields); // e: CustomEvent<TelemetryMessage>
 *   tb.subscribe({ rooms: ["group:building-a"], max_hz: 1, fields: ["temperature"], series: 60 });
 *   tb.connect();
 *
 * Needs the DOM library (browsers) or @types/node (Node >= 18: EventTarget, CustomEvent, fetch).
 * Checked by tests/js/types.test.mjs: `tsc --noEmit` of a typed example and of docs/react.md's
 * hook, and every export and public member of the module is declared here.
 */

// ---- rooms and values ---------------------------------------------------------------------

/** A room name: `global`, `device:<id>`, `group:<name>` or `user:<sub>` (docs/protocol.md → Rooms). */
export type Room = "global" | `device:${string}` | `group:${string}` | `user:${string}`;

/** The room of a device message: always its device's room, whichever of yours matched. */
export type DeviceRoom = `device:${string}`;

/** A telemetry field's value. */
export type FieldValue = number | string | boolean;

/** RFC 3339 UTC with milliseconds, e.g. "2026-11-23T13:26:03.123Z". */
export type Timestamp = string;

// ---- server → client ----------------------------------------------------------------------

/** What every server message has. `timestamp` is when the bridge sent (routed) it. */
export interface Envelope<T extends string, P> {
    type: T;
    payload: P;
    timestamp: Timestamp;
    /** Copied from the request this message answers. */
    request_id?: string | number;
}

/** A message of the bridge's ordered stream: a device message, an alert, a published message. */
export interface StreamEnvelope<T extends string, P> extends Envelope<T, P> {
    room: Room;
    /** One counter for the whole bridge (see `ConnectedPayload.epoch`), +1 per message. */
    seq: number;
    /** True on the last known state sent after a subscribe; never a new message. */
    snapshot?: true;
}

export interface DeviceEnvelope<T extends string, P> extends StreamEnvelope<T, P> {
    room: DeviceRoom;
}

export interface ConnectedPayload {
    connection_id: string;
    server_time: Timestamp;
    /** Names the life of this bridge's seq counter; another bridge, another epoch. */
    epoch: string;
    /** The token's `sub` ("" when it has none). */
    user: string;
}

/** How a `since` was honoured: by seq on the same bridge, by time on another one. */
export type RecoveryMode = "seq" | "time";

/** `recovered` is present only when the request had a `since`; `mode` exactly when it is true. */
export type SubscribedPayload = {
    /** The rooms of this request the connection is now in. */
    rooms: Room[];
    /** The bridge's last seq when the subscription took effect. */
    seq?: number;
} & (
    | { recovered?: undefined; mode?: undefined }
    | { recovered: true; mode: RecoveryMode }
    | { recovered: false; mode?: undefined }
);

export interface UnsubscribedPayload {
    rooms: Room[];
}

export interface TelemetryPayload {
    device_id: string;
    /** The device's own time (the ingest time when it sent none). */
    timestamp: Timestamp;
    fields: Record<string, FieldValue>;
    tags: Record<string, string>;
}

export interface DeviceStatusPayload {
    device_id: string;
    /** "online", "offline", or another word the device sends. */
    status: string;
    timestamp: Timestamp;
}

export interface AlertPayload {
    alert_id: string;
    device_id: string;
    rule_name: string;
    severity: string;
    field: string;
    value: FieldValue;
    threshold: number;
    /** The sample's timestamp. */
    timestamp: Timestamp;
    state: "firing" | "resolved";
}

/** One point of a series: [time in ms since the Unix epoch, value]. */
export type SeriesPoint = [t_ms: number, value: number];

/** Sent before the snapshot for a subscribe with `series`: a device's last values per numeric field, oldest first. */
export interface SeriesPayload {
    device_id: string;
    fields: Record<string, SeriesPoint[]>;
}

/** What the bridge says about a refused or failed request. */
export type ErrorCode =
    | "bad_request"
    | "forbidden"
    | "too_many_rooms"
    | "rate_limited"
    | "unknown_type"
    | "invalid_token"
    | "token_expired"
    | "server_error"
    | (string & {});

export interface ErrorPayload {
    code: ErrorCode;
    message: string;
    /** The rooms concerned, for a subscribe's refused rooms. */
    rooms?: Room[];
}

export interface TokenExpiringPayload {
    /** Unix seconds. */
    exp: number;
    /** Seconds left. */
    expires_in: number;
}

export interface RefreshedPayload {
    exp: number;
}

export type ConnectedMessage = Envelope<"connected", ConnectedPayload>;
export type SubscribedMessage = Envelope<"subscribed", SubscribedPayload>;
export type UnsubscribedMessage = Envelope<"unsubscribed", UnsubscribedPayload>;
export type TelemetryMessage = DeviceEnvelope<"telemetry", TelemetryPayload>;
export type DeviceStatusMessage = DeviceEnvelope<"device_status", DeviceStatusPayload>;
export type AlertMessage = DeviceEnvelope<"alert", AlertPayload>;
/** Not part of the stream: no seq, never replayed; sent again (fresh) with each subscribe that asks. */
export interface SeriesMessage extends Envelope<"series", SeriesPayload> {
    room: DeviceRoom;
}
/** A message published with POST /api/v1/publish (e.g. to `user:<sub>`); `room` is the room published to. */
export type NoticeMessage = StreamEnvelope<"notice", Record<string, unknown>>;
export type ErrorMessage = Envelope<"error", ErrorPayload>;
export type PongMessage = Envelope<"pong", Record<string, never>>;
export type RefreshedMessage = Envelope<"refreshed", RefreshedPayload>;
export type TokenExpiringMessage = Envelope<"token_expiring", TokenExpiringPayload>;

/** Every message type the bridge sends (a newer bridge may add types: they come as "message" too). */
export type ServerMessage =
    | ConnectedMessage
    | SubscribedMessage
    | UnsubscribedMessage
    | TelemetryMessage
    | DeviceStatusMessage
    | AlertMessage
    | SeriesMessage
    | NoticeMessage
    | ErrorMessage
    | PongMessage
    | RefreshedMessage
    | TokenExpiringMessage;

/*
 * POST /api/v1/publish may also put a `telemetry`, `device_status` or `alert` message of the
 * publisher's making into a room (its `room` the room published to, its payload as published);
 * such messages come typed as the device messages above, so check what a publisher may send.
 */

/** Device messages: what `since` recovers and the repeat filter compares. */
export type DeviceMessage = TelemetryMessage | DeviceStatusMessage | AlertMessage;

// ---- client → server ----------------------------------------------------------------------

/** Options of one subscribe request; they apply to the rooms that request joins. */
export interface SubscribeOptions {
    /** 0.1–100: at most this many telemetry messages per second per device, the newest state merged. */
    max_hz?: number;
    /** Telemetry (and snapshots, series) carry only these fields; a message with none is not sent. */
    fields?: string[];
    /** 1–history.series_points: a `series` message per device before the snapshot. */
    series?: number;
}

export interface SubscribeRequest extends SubscribeOptions {
    rooms: Room[];
}

/** A position in a bridge's stream; `time` lets another bridge of the fleet recover by time. */
export interface Since {
    epoch: string;
    seq: number;
    /** The envelope `timestamp` of the last stream message received. */
    time?: Timestamp;
}

export type ClientMessage =
    | { type: "subscribe"; request_id?: string | number; payload: SubscribeRequest & { since?: Since } }
    | { type: "unsubscribe"; request_id?: string | number; payload: { rooms: Room[] } }
    | { type: "ping"; request_id?: string | number }
    | { type: "refresh"; request_id?: string | number; payload: { token: string } };

// ---- the client ---------------------------------------------------------------------------

export type ConnectionState = "idle" | "connecting" | "open" | "reconnecting" | "closed";

export interface StateDetail {
    state: ConnectionState;
    attempt: number;
    /** "reconnecting": the wait before the next attempt. */
    delayMs?: number;
    /** "reconnecting": the close code that ended the last connection (0: it never opened). */
    code?: number;
    reason?: string;
}

export interface CloseDetail {
    code: number;
    reason: string;
    willReconnect: boolean;
}

export interface UnauthorizedDetail {
    /** The ticket endpoint's answer, 401 or 403. */
    status: number;
}

/** The events of a TelebridgeClient; each is a CustomEvent whose `detail` is given here. */
export interface TelebridgeEventMap {
    connected: CustomEvent<ConnectedMessage>;
    subscribed: CustomEvent<SubscribedMessage>;
    unsubscribed: CustomEvent<UnsubscribedMessage>;
    telemetry: CustomEvent<TelemetryMessage>;
    device_status: CustomEvent<DeviceStatusMessage>;
    alert: CustomEvent<AlertMessage>;
    series: CustomEvent<SeriesMessage>;
    notice: CustomEvent<NoticeMessage>;
    /** A server `error` message (not a transport error: see "close"). */
    error: CustomEvent<ErrorMessage>;
    pong: CustomEvent<PongMessage>;
    refreshed: CustomEvent<RefreshedMessage>;
    token_expiring: CustomEvent<TokenExpiringMessage>;
    /** Every server message but a dropped repeat. */
    message: CustomEvent<ServerMessage>;
    /** A device message dropped as a repeat after a recovery by time. */
    repeat: CustomEvent<DeviceMessage>;
    state: CustomEvent<StateDetail>;
    close: CustomEvent<CloseDetail>;
    /** The ticket endpoint refused the token: the client has stopped. */
    unauthorized: CustomEvent<UnauthorizedDetail>;
}

/** What the client needs of a WebSocket: the browser's, Node 22's global, or `ws`'s. */
export interface WebSocketLike {
    readonly readyState: number;
    send(data: string): void;
    close(code?: number, reason?: string): void;
    onmessage: ((ev: any) => void) | null;
    onclose: ((ev: any) => void) | null;
    onerror: ((ev: any) => void) | null;
}

export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** What the client needs of fetch (for the ticket request). */
export type FetchLike = (
    url: string,
    init: { method: string; headers: Record<string, string>; signal?: AbortSignal },
) => Promise<{ ok: boolean; status: number; json(): Promise<any> }>;

export interface TelebridgeDefaults {
    /** "ticket": POST /api/v1/ws/ticket, then ?ticket= (the token never sits in a URL); "token": ?token=. */
    credential: "ticket" | "token";
    /** Reconnection backoff: full jitter under min(maxDelayMs, minDelayMs × 2^attempt). */
    minDelayMs: number;
    maxDelayMs: number;
    /** A connection up this long resets the attempt counter. */
    stableAfterMs: number;
    pingIntervalMs: number;
    /** No pong within this drops the connection (and so reconnects). */
    pongTimeoutMs: number;
    /** Refresh the token this long before its exp (and on token_expiring). */
    refreshMarginS: number;
    /** For the ticket request and for the `connected` message. */
    connectTimeoutMs: number;
    /** After a recovery by time, a repeat is a message received within this before the position. */
    repeatWindowMs: number;
    /** The repeat filter holds at most this many keys (memory bound). */
    repeatMaxEntries: number;
}

export interface TelebridgeClientOptions extends Partial<TelebridgeDefaults> {
    /** ws(s)://host:port/ws */
    url: string;
    /** Asked before every connection and every refresh; may return a Promise. */
    getToken: () => string | Promise<string>;
    /** Joined on every connection, without options (like subscribe(rooms)). */
    rooms?: Room[];
    /** Default: derived from url (http(s)://host/api/v1/ws/ticket). */
    ticketUrl?: string;
    /** Default: globalThis.WebSocket (in Node 20, pass `ws`'s: `import WebSocket from "ws"`). */
    WebSocket?: WebSocketConstructor;
    /** Default: globalThis.fetch. */
    fetch?: FetchLike;
    /** Default: Math.random (for the backoff's jitter). */
    random?: () => number;
}

export interface Subscription {
    rooms: Set<Room>;
    options: SubscribeOptions;
}

export declare const DEFAULTS: Readonly<TelebridgeDefaults>;

/** The wait before reconnection attempt `attempt` (0 for the first retry), in ms. */
export declare function backoffDelay(
    attempt: number,
    random?: () => number,
    minMs?: number,
    maxMs?: number,
): number;

/** The `exp` claim (seconds) of a JWT, or null when it has none or is not a JWT. */
export declare function tokenExpiry(token: string | null | undefined): number | null;

/** http(s)://host/api/v1/ws/ticket for a ws(s)://host/… URL. */
export declare function ticketUrlFor(wsUrl: string): string;

/** The repeat key of a device message (type, device_id, payload.timestamp; alerts: also rule and state), or null. */
export declare function repeatKey(env: { type: string; payload?: unknown }): string | null;

/** The device messages received within windowMs of the newest (at most maxEntries), for telling repeats. */
export declare class RepeatFilter {
    /** now: the clock of arrival times (Date.now). */
    constructor(windowMs?: number, maxEntries?: number, now?: () => number);
    readonly windowMs: number;
    readonly maxEntries: number;
    readonly now: () => number;
    /** How many keys it holds. */
    readonly size: number;
    /** True between arm() and the end of the overlap. */
    readonly armed: boolean;
    record(env: { type: string; payload?: unknown; timestamp?: string }): void;
    /** A recovery by time from the position at timeMs begins. */
    arm(timeMs: number): void;
    /** True (once per held key) for a repeat while armed. */
    isRepeat(env: { type: string; payload?: unknown; timestamp?: string }): boolean;
    disarm(): void;
    private recent;
    private head;
    private candidates;
    private armedUntil;
}

export declare class TelebridgeClient extends EventTarget {
    constructor(opts: TelebridgeClientOptions);

    /** The options in effect (DEFAULTS merged with the constructor's). */
    readonly opts: Readonly<TelebridgeDefaults & TelebridgeClientOptions & { ticketUrl: string }>;
    readonly state: ConnectionState;
    /** Reconnection attempts since the last stable connection. */
    readonly attempt: number;
    /** The epoch of the current (or last) connection. */
    readonly epoch: string | null;
    /** What the next reconnection sends as `since`; null before the first message or subscribed. */
    readonly position: Readonly<Since> | null;
    /** position.seq, 0 before any. */
    readonly lastSeq: number;
    /** The `since` of this connection's subscribe requests. */
    readonly sinceSent: Readonly<Since> | null;
    /** The token's `sub`, from `connected`. */
    readonly user: string | null;
    /** The token in use. */
    readonly token: string | null;
    /** The subscribe requests sent again on every connection. */
    readonly subscriptions: ReadonlyArray<Subscription>;
    /** Every room of every subscription. */
    readonly rooms: Set<Room>;
    readonly repeats: RepeatFilter;
    /** Device messages dropped as repeats after recoveries by time. */
    readonly repeatsDropped: number;
    /** The current connection, null between connections. */
    readonly ws: WebSocketLike | null;

    /** Starts connecting, and keeps the connection up until close(). */
    connect(): void;
    /** Closes for good: no reconnection. */
    close(code?: number, reason?: string): void;
    /** Joins rooms now (when connected) and on every reconnection, with these options. */
    subscribe(request: Room[] | SubscribeRequest): void;
    /** Leaves rooms, now and on reconnections. */
    unsubscribe(rooms: Room[]): void;
    /** An application ping; resolves with the round trip in ms. */
    ping(): Promise<number>;
    /** Sends a message as JSON; false when not connected. */
    send(msg: ClientMessage | { type: string; [member: string]: unknown }): boolean;
    /** Asks getToken() for a fresh token and sends `refresh` (done by itself before exp). */
    refresh(): Promise<void>;

    addEventListener<K extends keyof TelebridgeEventMap>(
        type: K,
        listener: (ev: TelebridgeEventMap[K]) => void,
        options?: boolean | AddEventListenerOptions,
    ): void;
    addEventListener(
        type: string,
        listener: EventListenerOrEventListenerObject | null,
        options?: boolean | AddEventListenerOptions,
    ): void;
    removeEventListener<K extends keyof TelebridgeEventMap>(
        type: K,
        listener: (ev: TelebridgeEventMap[K]) => void,
        options?: boolean | EventListenerOptions,
    ): void;
    removeEventListener(
        type: string,
        listener: EventListenerOrEventListenerObject | null,
        options?: boolean | EventListenerOptions,
    ): void;

    /** A live stream message (has a seq, not a snapshot). */
    static isLive(env: { seq?: unknown; snapshot?: unknown }): boolean;

    private WebSocket;
    private fetch;
    private random;
    private timers;
    private nextRequest;
    private pendingPings;
    private refreshing;
    private onOnline;
    private forget;
    private open;
    private credentialUrl;
    private onClose;
    private scheduleReconnect;
    private onConnected;
    private onMessage;
    private isRepeat;
    private track;
    private heartbeat;
    private onPong;
    private rejectPings;
    private scheduleRefresh;
    private onRefreshAnswer;
    private setState;
    private emit;
    private clearTimers;
}
