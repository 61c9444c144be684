# Reads the contact files `cloudkit-sim contacts` wrote with independent readers (vobject for
# vCards, Python's sqlite3 for the address book databases, Pillow to decode every photo),
# matches the handles in truth.json with its own normalisation and the documented rule, and
# prints what it found as JSON: per source, the list of {handle, expected_display_name,
# photo_sha256}, plus a few facts about the files.
import base64, hashlib, io, json, os, re, sqlite3, sys
import vobject
from PIL import Image

out = sys.argv[1]
truth = json.load(open(os.path.join(out, "truth.json")))
OWN = {"tel:+15550000001", "mailto:me@icloud.example"}
facts = {"phone_forms": set(), "photos": 0, "nickname_only": 0, "org_only": 0}

def phone(s):
    d = re.sub(r"\D", "", s)
    if len(d) == 11 and d[0] == "1":
        d = d[1:]
    return "tel:+1" + d

def email(s):
    return "mailto:" + s.strip().lower()

def shape(s):
    return re.sub(r"\d", "9", s)

def name(given, family, nick, org):
    full = " ".join(x for x in (given, family) if x)
    if not given and not family:
        if nick:
            facts["nickname_only"] += 1
        elif org:
            facts["org_only"] += 1
    return full or nick or org or None

def photo_sha(data):
    if data is None:
        return None
    Image.open(io.BytesIO(data)).load()  # a real, decodable image
    facts["photos"] += 1
    return hashlib.sha256(data).hexdigest()

def expect(cards, handles):
    # cards: (uid, display name, set of handles, photo sha)
    result = []
    for h in handles:
        cands = [c for c in cards if h in c[2] and c[1] and not (c[2] & OWN)]
        best = min(cands, key=lambda c: (c[1], c[0]), default=None)
        result.append({"handle": h, "expected_display_name": best[1] if best else None, "photo_sha256": best[3] if best else None})
    return result

def data_uri_photos(text):
    # vobject reads vCard 3.0; a 4.0 `PHOTO:data:…;base64,…` URI loses everything after its
    # comma there, so those are taken from the unfolded lines (RFC 6350 §3.2) by UID.
    photos, uid = {}, None
    for line in text.replace("\r\n ", "").split("\r\n"):
        if line.startswith("UID:"):
            uid = line[4:]
        elif line.startswith("PHOTO:data:"):
            photos[uid] = base64.b64decode(line.split(",", 1)[1])
    return photos

def vcf(path):
    cards = []
    text = open(path, encoding="utf-8", newline="").read()
    uris = data_uri_photos(text)
    for c in vobject.readComponents(text):
        n = c.n.value
        nick = c.nickname.value if hasattr(c, "nickname") else None
        org = c.org.value[0] if hasattr(c, "org") else None
        hs = set()
        for t in c.contents.get("tel", []):
            facts["phone_forms"].add(shape(t.value))
            hs.add(phone(t.value))
        for e in c.contents.get("email", []):
            hs.add(email(e.value))
        data = None
        if hasattr(c, "photo"):
            v = c.photo.value
            data = v if isinstance(v, bytes) else uris[c.uid.value]
        cards.append((c.uid.value, name(n.given, n.family, nick, org), hs, photo_sha(data)))
    return cards

def mac():
    src = os.path.join(out, "AddressBook", "Sources")
    (uuid,) = os.listdir(src)
    db = sqlite3.connect(os.path.join(src, uuid, "AddressBook-v22.abcddb"))
    cards = []
    for pk, first, last, nick, org, uid, thumb in db.execute("SELECT Z_PK, ZFIRSTNAME, ZLASTNAME, ZNICKNAME, ZORGANIZATION, ZUNIQUEID, ZTHUMBNAILIMAGEDATA FROM ZABCDRECORD WHERE Z_ENT = 22"):
        hs = {phone(p) for (p,) in db.execute("SELECT ZFULLNUMBER FROM ZABCDPHONENUMBER WHERE ZOWNER = ?", (pk,))}
        hs |= {email(a) for (a,) in db.execute("SELECT ZADDRESS FROM ZABCDEMAILADDRESS WHERE ZOWNER = ?", (pk,))}
        image = os.path.join(src, uuid, "Images", uid.split(":")[0])
        data = open(image, "rb").read() if os.path.exists(image) else None
        assert (thumb is None) == (data is None) and (thumb is None or (thumb[0] == 1 and thumb[1:] == data)), uid
        cards.append((uid, name(first, last, nick, org), hs, photo_sha(data)))
    return cards

def ios():
    db = sqlite3.connect(os.path.join(out, "AddressBook.sqlitedb"))
    images = sqlite3.connect(os.path.join(out, "AddressBookImages.sqlitedb"))
    cards = []
    for rowid, first, last, nick, org in db.execute("SELECT ROWID, First, Last, Nickname, Organization FROM ABPerson"):
        hs = set()
        for prop, value, label in db.execute("SELECT property, value, (SELECT value FROM ABMultiValueLabel l WHERE l.rowid = m.label) FROM ABMultiValue m WHERE record_id = ?", (rowid,)):
            assert label and label.startswith("_$!<"), label
            hs.add(phone(value) if prop == 3 else email(value))
        row = images.execute("SELECT data FROM ABFullSizeImage WHERE record_id = ?", (rowid,)).fetchone()
        cards.append(("%09d" % rowid, name(first, last, nick, org), hs, photo_sha(row[0] if row else None)))
    return cards

handles = [e["handle"] for e in truth["base"]]
found = {
    "vcf": expect(vcf(os.path.join(out, "contacts.vcf")), handles),
    "vcf_renamed": expect(vcf(os.path.join(out, "contacts-renamed.vcf")), handles),
    "mac": expect(mac(), handles),
    "ios": expect(ios(), handles),
}
facts["phone_forms"] = sorted(facts["phone_forms"])
found["facts"] = facts
print(json.dumps(found))
