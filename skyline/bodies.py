"""Request bodies: the one JSON parser of every API.

django-ninja's default parser is `json.loads`, which recurses (a body of 100,000 `[` is a
RecursionError), decodes bytes that are not UTF-8 with `surrogatepass` and accepts lone surrogates
(`"\\ud800"`), which no encoder takes later: a row holding one stops the thread that writes it.
orjson refuses all of these (strict UTF-8, no lone surrogates, at most 1024 levels of nesting, no
NaN or Infinity), so every string a view receives is valid UTF-8 text.

Each API is built with `parser=JsonParser()`. ninja turns a parser error into `HttpError(400)`,
which each API answers in its own error shape with `http_error_message`.
"""

import orjson
from ninja.errors import HttpError
from ninja.parser import Parser


class UnreadableBody(ValueError):
    """A request body that is not JSON in UTF-8; the message says where it fails."""


class JsonParser(Parser):
    def parse_body(self, request):
        try:
            return orjson.loads(request.body)
        except orjson.JSONDecodeError as exc:
            raise UnreadableBody(f"the body is not JSON text in UTF-8: {exc}") from None


def http_error_message(exc: HttpError):
    """The message of an HttpError; for a body the parser refused, why it did."""
    # ninja raises its HttpError from the parser's error.
    cause = exc.__cause__
    return str(cause) if isinstance(cause, UnreadableBody) else str(exc)
