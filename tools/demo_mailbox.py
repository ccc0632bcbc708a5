#!/usr/bin/env python3
"""Seed the demo mailbox on the demo Dovecot (run by tools/demo.sh; idempotent).

    python tools/demo_mailbox.py [--deliver-all]

Needs env ``MAILSYNC_DOVECOT`` and ``MAILSYNC_SMTP`` (tools/services.py start). Creates the user
DEMO_MAIL_LOGIN (password DEMO_MAIL_PASSWORD) on both servers. Its mail is the mail a
salesperson exchanged over the last two weeks with the contacts of Odoo's crm demo leads: one
conversation per lead, written to and signed by the lead's contact (name, company, job title
and address as the crm demo data gives them, read from
``$ODOO_HOME/src/odoo/addons/crm/data/crm_lead_demo.xml``), answered and signed by the admin
user the mailbox is connected for (Mitchell Admin in Odoo's demo data). Threaded by
In-Reply-To/References, with a few PDF and CSV attachments; the latest received mail unread.

The mail arrives as it would have: tools/demo_seed.py delivers the messages one by one, oldest
first, and syncs after each (``to_deliver``, ``deliver``), so that each lead's chatter holds
the conversation in the order it was written (a first sync of a full mailbox would record all
of INBOX, then all of Sent). ``--deliver-all`` puts every message in at once instead.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import xml.etree.ElementTree as ET
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from mailsync.testing.dovecot import shared_dovecot  # noqa: E402
from mailsync.testing.smtp_server import shared_smtp  # noqa: E402

LOGIN = os.environ.get("DEMO_MAIL_LOGIN", "demo.rep@example.test")
PASSWORD = os.environ.get("DEMO_MAIL_PASSWORD", "demo-password")
ODOO_HOME = os.environ.get("ODOO_HOME", "/opt/odoo")
ADDONS = os.path.join(ODOO_HOME, "src", "odoo", "addons")
OUR_COMPANY = "YourCompany"  # the demo company's name (base.main_company)

# The crm demo leads the conversations are about, as Odoo 18.0's crm_lead_demo.xml has them
# (contact, email, company, job title); read again from that file when it is there, so that
# every greeting and signature names the contact of the lead the mail lands on.
LEADS = {
    "crm_case_4": ("Henry Campbell", "hmc@yahoo.example.com", "Burstein Applebee", ""),
    "crm_case_5": ("Carrie Helle", "helle@stonageit.example.com", "Stonage IT", "Purchase Manager"),
    "crm_case_1": (
        "Jacques Dunagan",
        "jdunagan@leclub.example.com",
        "Le Club SARL",
        "Training Manager",
    ),
    "crm_case_3": ("John Miller", "contact@thekompany.example.com", "The Kompany", ""),
    "crm_case_13": ("Will McEncroe", "willmac@rediffmail.example.com", "Rediff Mail", ""),
    "crm_case_25": ("Henry Jordan", "henry@elight.com", "E-light Industry", ""),
    "crm_case_6": ("Tina Pinero", "tina@opensides.example.com", "Opensides", "Consultant"),
    "crm_case_graph_8": ("Chalmers Redford", "credford4@salon.com", "Muxo", ""),
}

# One conversation per lead: (days ago, hour, "in"/"out", new subject or None for a reply to
# the thread's last message, body, attachments). Bodies are str.format templates:
# {first} {name} {company} {signature} (the contact's), {rep_first} {rep_signature} (ours).
# Attachments: (file name, kind, lines) — kind "pdf" or "csv".
CONVERSATIONS = {
    "crm_case_4": [
        (
            12,
            "10:14",
            "in",
            "Office chairs for our Manchester office",
            "Hello {rep_first},\n\nWe are refurbishing the second floor of our Manchester office "
            "and need about 40 ergonomic office chairs. Which models would you recommend for a "
            "full day at the desk, and what is your lead time?\n\nKind regards,\n{signature}",
            [],
        ),
        (
            12,
            "15:40",
            "out",
            None,
            "Hello {first},\n\nThank you for your message. For a full day at the desk I would "
            "recommend our Office Chair Black: adjustable arms, seat depth and lumbar support. "
            "For 40 chairs the lead time is three weeks.\n\nYou will find our quotation attached; "
            "prices include delivery to Manchester.\n\nBest regards,\n{rep_signature}",
            [
                (
                    "Quotation S00021 - {company}.pdf",
                    "pdf",
                    [
                        "Quotation S00021",
                        "{company} - attn. {name}",
                        "",
                        "40 x Office Chair Black          GBP 120.00   GBP 4,800.00",
                        "Delivery to Manchester           included",
                        "Total                                         GBP 4,800.00",
                        "",
                        "Valid 30 days. Lead time: 3 weeks.",
                    ],
                )
            ],
        ),
        (
            11,
            "09:05",
            "in",
            None,
            "Hello {rep_first},\n\nThanks for the quick quotation. Two questions: can the chairs "
            "come in a grey fabric instead of black, and is assembly included?\n\nBest,\n"
            "{signature}",
            [],
        ),
        (
            10,
            "11:30",
            "out",
            None,
            "Hello {first},\n\nGrey fabric is available at no extra cost, and assembly on site is "
            "included for orders of 30 chairs or more. If you like, you can try the models in our "
            "showroom before you decide.\n\nBest regards,\n{rep_signature}",
            [],
        ),
        (
            6,
            "14:22",
            "in",
            "Visit of your showroom",
            "Hello {rep_first},\n\nWe would like to take you up on the showroom visit: could "
            "two of us come on Thursday afternoon to try two or three models?\n\nThanks,\n"
            "{signature}",
            [],
        ),
        (
            6,
            "16:05",
            "out",
            None,
            "Hello {first},\n\nThursday at 2 pm works well; I will have the Office Chair in black "
            "and grey and our two mesh models ready for you.\n\nSee you on Thursday,\n"
            "{rep_signature}",
            [],
        ),
        (
            3,
            "17:45",
            "in",
            None,
            "Hello {rep_first},\n\nThank you for Thursday. The team liked the grey Office Chair "
            "best. Could you send the final quotation for 42 chairs, delivered in the first week "
            "of next month? The floor plan with the desks is attached.\n\nKind regards,\n"
            "{signature}",
            [
                (
                    "Second floor - desk plan.pdf",
                    "pdf",
                    [
                        "{company} - Manchester, second floor",
                        "",
                        "Open space A: 24 desks",
                        "Open space B: 14 desks",
                        "Meeting rooms: 4 chairs",
                        "Total: 42 chairs",
                    ],
                )
            ],
        ),
        (
            1,
            "09:12",
            "out",
            None,
            "Hello {first},\n\nPlease find attached the final quotation for 42 Office Chairs in "
            "grey fabric, delivered and assembled in the first week of next month. It is valid "
            "for 30 days; a signed copy is all we need to plan the delivery.\n\n"
            "Best regards,\n{rep_signature}",
            [
                (
                    "Quotation S00027 - {company}.pdf",
                    "pdf",
                    [
                        "Quotation S00027",
                        "{company} - attn. {name}",
                        "",
                        "42 x Office Chair, grey fabric   GBP 120.00   GBP 5,040.00",
                        "Delivery and assembly            included",
                        "Total                                         GBP 5,040.00",
                        "",
                        "Valid 30 days. Delivery: first week of next month.",
                    ],
                )
            ],
        ),
    ],
    "crm_case_5": [
        (
            9,
            "08:50",
            "in",
            "Quotation for 50 chairs",
            "Hello {rep_first},\n\nStonage IT is moving to a new office in Philadelphia. Could you "
            "send us a quotation for 50 office chairs? Our requirements are in the attached "
            "file.\n\nRegards,\n{signature}",
            [
                (
                    "chair requirements.csv",
                    "csv",
                    [
                        "item,quantity,notes",
                        "office chair,44,adjustable arms",
                        "meeting room chair,6,stackable",
                    ],
                )
            ],
        ),
        (
            8,
            "10:20",
            "out",
            None,
            "Hello {first},\n\nThank you for your request. Before I prepare the quotation: do you "
            "have a budget per chair in mind, and by when do you need them in Philadelphia?\n\n"
            "Kind regards,\n{rep_signature}",
            [],
        ),
        (
            8,
            "13:02",
            "in",
            None,
            "Hello {rep_first},\n\nAbout USD 150 per office chair; the move is planned for the end "
            "of next month.\n\nRegards,\n{signature}",
            [],
        ),
        (
            5,
            "11:15",
            "out",
            None,
            "Hello {first},\n\nHere is our quotation: 44 Office Chairs Black at USD 139 and 6 "
            "stackable meeting room chairs at USD 65, delivered before the end of next month.\n\n"
            "Kind regards,\n{rep_signature}",
            [
                (
                    "Quotation S00024 - {company}.pdf",
                    "pdf",
                    [
                        "Quotation S00024",
                        "{company} - attn. {name}",
                        "",
                        "44 x Office Chair Black          USD 139.00   USD 6,116.00",
                        "6 x Meeting room chair           USD  65.00   USD   390.00",
                        "Total                                         USD 6,506.00",
                    ],
                )
            ],
        ),
        (
            2,
            "16:40",
            "in",
            None,
            "Hello {rep_first},\n\nThank you, this fits our budget. I will confirm the order after "
            "our budget meeting on Friday.\n\nRegards,\n{signature}",
            [],
        ),
    ],
    "crm_case_1": [
        (
            14,
            "09:30",
            "in",
            "Furniture for our training rooms",
            "Hello {rep_first},\n\nWe are opening two new training rooms in Paris and need desks "
            "and chairs for 16 trainees each. Could you send me your catalogue and an idea of "
            "the prices?\n\nBest regards,\n{signature}",
            [],
        ),
        (
            13,
            "14:10",
            "out",
            None,
            "Hello {first},\n\nThank you for thinking of us. For training rooms our foldable "
            "Training Desk and the stackable chair are the usual choice: they store away when the "
            "room is used for something else. Shall I prepare a quotation for 32 of each?\n\n"
            "Best regards,\n{rep_signature}",
            [],
        ),
        (
            9,
            "10:45",
            "in",
            None,
            "Hello {rep_first},\n\nYes please, 32 desks and 32 chairs. We might need more desks "
            "for a third room later this year.\n\nBest regards,\n{signature}",
            [],
        ),
        (
            7,
            "09:20",
            "out",
            None,
            "Hello {first},\n\nThe quotation for 32 Training Desks and 32 stackable chairs is on "
            "its way by post and attached here. I noted the third room: we can keep the same "
            "prices for a follow-up order within six months.\n\nBest regards,\n{rep_signature}",
            [
                (
                    "Quotation S00022 - {company}.pdf",
                    "pdf",
                    [
                        "Quotation S00022",
                        "{company} - attn. {name}",
                        "",
                        "32 x Training Desk               EUR 210.00   EUR 6,720.00",
                        "32 x Stackable chair             EUR  45.00   EUR 1,440.00",
                        "Total                                         EUR 8,160.00",
                    ],
                )
            ],
        ),
    ],
    "crm_case_3": [
        (
            7,
            "15:05",
            "in",
            "Pricing for 25 desks",
            "Hello {rep_first},\n\nWhat would 25 height-adjustable desks cost, delivered to New "
            "York?\n\nThanks,\n{signature}",
            [],
        ),
        (
            6,
            "09:40",
            "out",
            None,
            "Hello {first},\n\nOur electric Standing Desk is USD 540 each; for 25 desks we offer "
            "USD 495, delivery to New York included. Would you like a formal quotation?\n\n"
            "Best regards,\n{rep_signature}",
            [],
        ),
        (
            4,
            "18:20",
            "in",
            None,
            "Hello {rep_first},\n\nYes, please send the quotation; I will present it to our office "
            "manager next week.\n\nThanks,\n{signature}",
            [],
        ),
    ],
    "crm_case_13": [
        (
            5,
            "23:10",
            "in",
            "Quote for 12 tables",
            "Hello {rep_first},\n\nWe need 12 meeting tables for our new Melbourne office. Do you "
            "ship to Australia, and how long would it take?\n\nCheers,\n{signature}",
            [],
        ),
        (
            4,
            "08:35",
            "out",
            None,
            "Hello {first},\n\nWe do ship to Australia: about five weeks by sea for 12 tables. I "
            "will send you a quotation today with two table sizes to choose from.\n\n"
            "Best regards,\n{rep_signature}",
            [],
        ),
        (
            1,
            "22:55",
            "in",
            None,
            "Hello {rep_first},\n\nThanks. We will go for the larger size; could you also quote "
            "the delivery to our door?\n\nCheers,\n{signature}",
            [],
        ),
    ],
    "crm_case_25": [
        (
            8,
            "13:30",
            "in",
            "Open space for 20 people",
            "Hello {rep_first},\n\nWe are redesigning our Buenos Aires office as an open space for "
            "20 people. Do you also help with the layout, or only supply the furniture?\n\n"
            "Regards,\n{signature}",
            [],
        ),
        (
            7,
            "10:05",
            "out",
            None,
            "Hello {first},\n\nWe do both: our designer proposes a layout from your floor plan, "
            "free of charge with the order. Could you send us the plan and the number of meeting "
            "rooms you need?\n\nBest regards,\n{rep_signature}",
            [],
        ),
        (
            2,
            "14:50",
            "in",
            None,
            "Hello {rep_first},\n\nWe need two meeting rooms and a quiet corner. I will send the "
            "floor plan as soon as the architect has updated it.\n\nRegards,\n{signature}",
            [],
        ),
    ],
    "crm_case_6": [
        (
            4,
            "11:00",
            "in",
            "Information about your services",
            "Hello {rep_first},\n\nI advise a client on furnishing their offices in Rome. Do you "
            "offer installation and a maintenance contract for the furniture?\n\n"
            "Best regards,\n{signature}",
            [],
        ),
        (
            3,
            "09:15",
            "out",
            None,
            "Hello {first},\n\nYes to both: installation is included in our offers, and a yearly "
            "maintenance contract covers adjustments and repairs of chairs and desks. I can send "
            "you the details and our price list.\n\nBest regards,\n{rep_signature}",
            [],
        ),
    ],
    "crm_case_graph_8": [
        (
            10,
            "07:45",
            "in",
            "Custom desks (100 pieces)",
            "Hello {rep_first},\n\nCan you make 100 desks to our own dimensions (140 x 70 cm) with "
            "our logo engraved on the front panel?\n\nRegards,\n{signature}",
            [],
        ),
        (
            9,
            "12:30",
            "out",
            None,
            "Hello {first},\n\nCustom dimensions and an engraved logo are possible from 50 pieces. "
            "Could you send your logo as a vector file so we can make a sample?\n\n"
            "Best regards,\n{rep_signature}",
            [],
        ),
        (
            5,
            "08:05",
            "in",
            None,
            "Hello {rep_first},\n\nThe logo is on its way from our designer. How long does the "
            "sample take?\n\nRegards,\n{signature}",
            [],
        ),
    ],
}

UNREAD_LAST = 3  # the last received messages are left unread


def _field_texts(record):
    return {field.get("name"): (field.text or "").strip() for field in record.findall("field")}


def crm_demo_contacts():
    """{lead xmlid: (contact name, email, company, job title)} of the conversations' leads, from
    Odoo's crm demo data when it is there (else as in Odoo 18.0). A lead without a contact name
    or email has no conversation."""
    path = os.path.join(ADDONS, "crm", "data", "crm_lead_demo.xml")
    try:
        tree = ET.parse(path)
    except (OSError, ET.ParseError):
        return dict(LEADS)
    found = {}
    for record in tree.iter("record"):
        xmlid = record.get("id")
        if record.get("model") != "crm.lead" or xmlid not in LEADS:
            continue
        values = _field_texts(record)
        if values.get("active") in ("0", "False"):
            continue
        name, email = values.get("contact_name"), values.get("email_from")
        if name and email and "@" in email:
            found[xmlid] = (
                name,
                email.strip(),
                values.get("partner_name") or "",
                values.get("function") or "",
            )
    return found


def rep_name():
    """The name of the user the demo mailbox is connected for: the admin (Mitchell Admin in
    Odoo's demo data)."""
    if os.environ.get("DEMO_MAIL_NAME"):
        return os.environ["DEMO_MAIL_NAME"]
    path = os.path.join(ADDONS, "base", "data", "res_users_demo.xml")
    try:
        for record in ET.parse(path).iter("record"):
            if record.get("id") in ("base.partner_admin", "partner_admin"):
                name = _field_texts(record).get("name")
                if name:
                    return name
    except (OSError, ET.ParseError):
        pass
    return "Mitchell Admin"


def tiny_pdf(lines):
    """A one-page PDF showing ``lines`` (Helvetica, ASCII)."""

    def escape(text):
        text = text.encode("ascii", "replace").decode()
        return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    content = (
        "BT /F1 11 Tf 14 TL 60 770 Td " + " ".join(f"({escape(line)}) '" for line in lines) + " ET"
    )
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
        "/Resources << /Font << /F1 5 0 R >> >> >>",
        f"<< /Length {len(content)} >>\nstream\n{content}\nendstream",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = "%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n"
    out += "".join(f"{offset:010d} 00000 n \n" for offset in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n"
    return out.encode("ascii")


def _html(text):
    """The HTML alternative a mail client sends along with ``text``."""
    from html import escape

    paragraphs = [escape(p).replace("\n", "<br>") for p in text.split("\n\n")]
    return (
        '<html><body><div style="font-family: Arial, sans-serif; font-size: 14px">'
        + "".join(f"<p>{p}</p>" for p in paragraphs)
        + "</div></body></html>"
    )


def conversation_messages(now=None):
    """[(folder, raw, flags, date)] of every conversation."""
    now = now or dt.datetime.now(dt.timezone.utc)
    rep = rep_name()
    contacts = crm_demo_contacts()
    messages = []
    for xmlid, steps in CONVERSATIONS.items():
        if xmlid not in contacts:
            continue
        name, email, company, function = contacts[xmlid]
        signature = "\n".join(filter(None, [name, ", ".join(filter(None, [function, company]))]))
        values = {
            "first": name.split()[0],
            "name": name,
            "company": company or name,
            "signature": signature,
            "rep_first": rep.split()[0],
            "rep_signature": f"{rep}\n{OUR_COMPANY}",
        }
        contact_domain = email.rsplit("@", 1)[1]
        subject, thread = None, []
        for days, clock, direction, new_subject, body, attachments in steps:
            hour, minute = (int(part) for part in clock.split(":"))
            when = (now - dt.timedelta(days=days)).replace(
                hour=hour, minute=minute, second=(7 * len(thread)) % 60, microsecond=0
            )
            when = min(when, now - dt.timedelta(minutes=30))
            if new_subject:
                subject, thread = new_subject, []
            msg = EmailMessage()
            ours = direction == "out"
            msg["From"] = formataddr((rep, LOGIN)) if ours else formataddr((name, email))
            msg["To"] = formataddr((name, email)) if ours else formataddr((rep, LOGIN))
            msg["Subject"] = subject if not thread else f"Re: {subject}"
            msg["Date"] = format_datetime(when)
            msg["Message-ID"] = make_msgid(
                domain=LOGIN.rsplit("@", 1)[1] if ours else contact_domain
            )
            if thread:
                msg["In-Reply-To"] = thread[-1]
                msg["References"] = " ".join(thread[-10:])
            text = body.format(**values)
            msg.set_content(text)
            if ours:  # Odoo users' mail clients send an HTML version as well
                msg.add_alternative(_html(text), subtype="html")
            for file_name, kind, lines in attachments:
                lines = [line.format(**values) for line in lines]
                if kind == "pdf":
                    msg.add_attachment(
                        tiny_pdf(lines),
                        maintype="application",
                        subtype="pdf",
                        filename=file_name.format(**values),
                    )
                else:
                    msg.add_attachment(
                        ("\r\n".join(lines) + "\r\n").encode(),
                        maintype="text",
                        subtype="csv",
                        filename=file_name.format(**values),
                    )
            thread.append(msg["Message-ID"])
            raw = msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))
            messages.append(("Sent" if ours else "INBOX", raw, when))
    inbox = sorted(
        (i for i, m in enumerate(messages) if m[0] == "INBOX"), key=lambda i: messages[i][2]
    )
    unread = set(inbox[-UNREAD_LAST:])
    return [
        (folder, raw, () if i in unread else ("\\Seen",), when)
        for i, (folder, raw, when) in enumerate(messages)
    ]


def delivered(dovecot):
    """How many messages the demo mailbox holds (INBOX and Sent)."""
    return sum(len(dovecot.flags(LOGIN, folder)) for folder in ("INBOX", "Sent"))


def to_deliver(dovecot, now=None):
    """The conversation's messages not in the mailbox yet, oldest first: (folder, raw, flags,
    date). An empty mailbox gets all of them; a mailbox the conversation was delivered to (or
    one holding other mail) gets none."""
    messages = sorted(conversation_messages(now), key=lambda message: message[3])
    return messages[delivered(dovecot) :] if delivered(dovecot) < len(messages) else []


def deliver(dovecot, message):
    """One message arrives: received mail in INBOX, mail the user sent in Sent."""
    folder, raw, flags, when = message
    dovecot.append(LOGIN, folder, raw, flags, when)


def main(argv=None):
    deliver_all = "--deliver-all" in (argv if argv is not None else sys.argv[1:])
    dovecot = shared_dovecot()
    dovecot.add_user(LOGIN, PASSWORD)
    if os.environ.get("MAILSYNC_SMTP"):
        shared_smtp().add_user(LOGIN, PASSWORD)  # same login on the demo SMTP server
    waiting = to_deliver(dovecot)
    if not waiting:
        print(
            f"demo mailbox {LOGIN}: {delivered(dovecot)} messages "
            f"(bash tools/demo.sh --reset starts over)"
        )
        return 0
    if deliver_all:
        for message in waiting:
            deliver(dovecot, message)
        print(f"demo mailbox {LOGIN}: {len(waiting)} messages delivered")
        return 0
    leads = len({xmlid for xmlid in CONVERSATIONS if xmlid in crm_demo_contacts()})
    print(
        f"demo mailbox {LOGIN}: ready; {len(waiting)} messages of conversations with the "
        f"contacts of {leads} crm demo leads arrive one by one at the first sync "
        f"(tools/demo_seed.py)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
