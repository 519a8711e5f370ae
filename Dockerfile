# One image for every Speako service; the command picks the service (speako serve <name>).
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY pyproject.toml README.md ./
COPY speako ./speako
COPY chassis ./chassis
COPY services ./services
RUN pip install --no-cache-dir .
USER nobody
ENTRYPOINT ["speako"]
