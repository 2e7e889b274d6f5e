"""The two channels: signed webhook POSTs (httpx) and plain-text e-mail (smtplib in a thread).

A sender makes one attempt and says what happened (``AttemptResult``); retries are the delivery
loop's business. Details are log-safe: status codes and error classes, never addresses or secrets.
"""

from __future__ import annotations

import asyncio
import smtplib
import time
from collections.abc import Callable
from email.message import EmailMessage
from email.utils import make_msgid

import httpx

from consumers.notifier.egress import EgressRefusedError
from consumers.notifier.messages import email_text
from consumers.notifier.model import NotificationJob
from consumers.notifier.policy import AttemptResult, Verdict, classify_http_status, parse_retry_after
from consumers.notifier.signing import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, signature_header


class WebhookSender:
    def __init__(self, client: httpx.AsyncClient, clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self.clock = clock

    async def send(self, job: NotificationJob) -> AttemptResult:
        body = job.body()
        timestamp = int(self.clock())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "parcelstream-notifier",
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: signature_header(job.secret, body, timestamp),
            IDEMPOTENCY_HEADER: job.job_id,
        }
        try:
            response = await self.client.post(job.address, content=body, headers=headers)
        except EgressRefusedError as error:
            return AttemptResult(Verdict.FAIL, str(error))  # the URL will not change by retrying
        except httpx.TimeoutException as error:
            return AttemptResult(Verdict.RETRY, f"timeout ({type(error).__name__})")
        except httpx.TransportError as error:
            return AttemptResult(Verdict.RETRY, f"connection error ({type(error).__name__})")
        verdict = classify_http_status(response.status_code)
        return AttemptResult(
            verdict, f"HTTP {response.status_code}", parse_retry_after(response.headers.get("Retry-After"))
        )


class EmailSender:
    def __init__(self, host: str, port: int, sender: str, timeout_s: float) -> None:
        self.host = host
        self.port = port
        self.sender = sender
        self.timeout_s = timeout_s

    def build_message(self, job: NotificationJob) -> EmailMessage:
        subject, text = email_text(job.payload, job.language)
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = job.address
        message["Subject"] = subject
        message["Message-ID"] = make_msgid(idstring=job.job_id[:16])
        message["X-Parcelstream-Idempotency-Key"] = job.job_id
        message.set_content(text)
        message["Content-Language"] = job.language  # after set_content, which resets Content-* headers
        return message

    def _send_blocking(self, message: EmailMessage) -> AttemptResult:
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout_s) as smtp:
                smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as error:
            codes = sorted({code for code, _ in error.recipients.values()})
            transient = all(400 <= code < 500 for code in codes)
            return AttemptResult(Verdict.RETRY if transient else Verdict.FAIL, f"SMTP recipient refused {codes}")
        except smtplib.SMTPResponseException as error:
            transient = 400 <= error.smtp_code < 500
            return AttemptResult(Verdict.RETRY if transient else Verdict.FAIL, f"SMTP {error.smtp_code}")
        except (OSError, smtplib.SMTPException) as error:
            return AttemptResult(Verdict.RETRY, f"SMTP connection error ({type(error).__name__})")
        return AttemptResult(Verdict.SENT, "SMTP 250")

    async def send(self, job: NotificationJob) -> AttemptResult:
        return await asyncio.to_thread(self._send_blocking, self.build_message(job))
