"""A Django project's use of the backend."""
from __future__ import annotations

from smtpstream.django import EmailBackend, EmailMultiAlternatives


def send_report(path: str) -> int:
    backend = EmailBackend(host="smtp.example.com", port=587, use_tls=True, fail_silently=False)
    message = EmailMultiAlternatives("Report", "see attached", "app@example.com", ["you@example.org"])
    message.attach_file(path)
    return backend.send_messages([message])
