# One image for every role: web (gunicorn), consume_firehose, celery worker, celery beat.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=skyline.settings \
    SKYLINE_DATA_DIR=/data

WORKDIR /app
COPY requirements.lock ./
RUN pip install --no-cache-dir --require-hashes -r requirements.lock
COPY . .
RUN useradd --system --home /app skyline && mkdir -p /data && chown skyline /data
USER skyline

EXPOSE 8000
CMD ["gunicorn", "--config", "skyline/gunicorn.conf.py", "skyline.wsgi"]
