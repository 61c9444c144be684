// What Element shows in its room list, computed by matrix-js-sdk (Element Web's engine) rather
// than by our own code: the tests use it as an independent client to check that bridged DMs are
// named after their contacts and show their photos.
//
// It starts a client as Element does (lazy-loaded members, so the room names come from the
// server's `m.heroes` and the members' display names), waits for the first sync to be PREPARED
// (event-driven, bounded by --timeout-ms), and prints one JSON document on stdout:
//
//   {"user_id": "...", "rooms": [{"room_id", "name", "avatar", "members": [{"user_id", "name", "avatar_url"}]}]}
//
// `name` is js-sdk's computed `room.name`; `avatar` is the room's avatar mxc, else the DM
// partner's (`getAvatarFallbackMember`), as Element's room avatar falls back; both are read right
// after the first sync, as the room list shows them. `members` are the joined members after
// `loadMembersIfNeeded` (as the member list shows them). Then it exits: 0 on success, 1 with a
// message on stderr otherwise. js-sdk's warnings and errors go to stderr, its chatter only with
// ROOM_NAMES_VERBOSE=1.
//
// Settings (argv wins over the environment):
//   --homeserver URL   MATRIX_HOMESERVER_URL   the homeserver's base URL
//   --user ID          MATRIX_USER_ID          the logged-in user (asked with whoami if absent)
//   (no flag)          MATRIX_ACCESS_TOKEN     the user's access token (only in the environment,
//                                              so it is not shown in process lists)
//   --timeout-ms N     (default 120000)        how long the first sync may take

// js-sdk logs through console (looked up on every call); stdout carries only the JSON.
const toStderr = (...args) => process.stderr.write(args.map(String).join(" ") + "\n");
const verbose = process.env.ROOM_NAMES_VERBOSE === "1";
for (const level of ["log", "info", "debug", "trace"]) {
    console[level] = verbose ? toStderr : () => {};
}
console.warn = toStderr;

const sdk = await import("matrix-js-sdk");

function settings(argv, env) {
    const out = {
        homeserver: env.MATRIX_HOMESERVER_URL,
        user: env.MATRIX_USER_ID,
        token: env.MATRIX_ACCESS_TOKEN,
        timeoutMs: 120000,
    };
    for (let i = 0; i < argv.length; i++) {
        const value = argv[i + 1];
        switch (argv[i]) {
            case "--homeserver":
                out.homeserver = value;
                break;
            case "--user":
                out.user = value;
                break;
            case "--timeout-ms":
                out.timeoutMs = Number(value);
                break;
            default:
                throw new Error(`unknown argument ${argv[i]} (see the comment at the top of room-names.mjs)`);
        }
        i++;
    }
    if (!out.homeserver) throw new Error("no homeserver: pass --homeserver URL or set MATRIX_HOMESERVER_URL");
    if (!out.token) throw new Error("no access token: set MATRIX_ACCESS_TOKEN");
    if (!Number.isFinite(out.timeoutMs) || out.timeoutMs <= 0) throw new Error("--timeout-ms must be a positive number");
    return out;
}

// Resolves when the first sync is PREPARED; rejects on the deadline (with the last sync state
// and error, if any).
function firstSync(client, timeoutMs) {
    return new Promise((resolve, reject) => {
        let last = { state: null, error: null };
        const timer = setTimeout(() => {
            client.removeListener(sdk.ClientEvent.Sync, onSync);
            reject(new Error(`no PREPARED sync in ${timeoutMs} ms (last state ${last.state}, error ${last.error})`));
        }, timeoutMs);
        function onSync(state, _prev, data) {
            last = { state, error: data?.error?.message ?? last.error };
            if (state === sdk.SyncState.Prepared) {
                clearTimeout(timer);
                client.removeListener(sdk.ClientEvent.Sync, onSync);
                resolve();
            }
        }
        client.on(sdk.ClientEvent.Sync, onSync);
    });
}

function avatarOf(room) {
    return room.getMxcAvatarUrl() ?? room.getAvatarFallbackMember()?.getMxcAvatarUrl() ?? null;
}

async function main() {
    const s = settings(process.argv.slice(2), process.env);
    const client = sdk.createClient({ baseUrl: s.homeserver, accessToken: s.token, userId: s.user });
    if (!s.user) {
        const me = await client.whoami();
        client.credentials.userId = me.user_id;
    }
    const prepared = firstSync(client, s.timeoutMs);
    await client.startClient({ lazyLoadMembers: true, initialSyncLimit: 20 });
    await prepared;

    const joined = client.getRooms().filter((room) => room.getMyMembership() === "join");
    // Name and avatar as the room list shows them, before any member list is opened.
    const rooms = joined.map((room) => ({ room, room_id: room.roomId, name: room.name, avatar: avatarOf(room) }));
    const out = [];
    for (const { room, ...seen } of rooms) {
        await room.loadMembersIfNeeded();
        const members = room.getJoinedMembers().map((m) => ({ user_id: m.userId, name: m.name, avatar_url: m.getMxcAvatarUrl() ?? null }));
        members.sort((a, b) => (a.user_id < b.user_id ? -1 : a.user_id > b.user_id ? 1 : 0));
        out.push({ ...seen, members });
    }
    out.sort((a, b) => (a.room_id < b.room_id ? -1 : a.room_id > b.room_id ? 1 : 0));
    client.stopClient();
    process.stdout.write(JSON.stringify({ user_id: client.getUserId(), rooms: out }) + "\n");
}

main().then(
    () => process.exit(0),
    (e) => {
        process.stderr.write(`room-names: ${e?.stack ?? e}\n`);
        process.exit(1);
    },
);
