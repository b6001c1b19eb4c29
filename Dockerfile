# costbot container image: multi-stage, slim Python, non-root, the SQLite store on /data.
# Build: docker build -t costbot .   Run: docker run --rm costbot demo
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY costbot costbot
COPY cleaners cleaners
# Wheels for costbot and every dependency; the demo extra keeps `costbot demo` working.
RUN pip wheel --no-cache-dir --wheel-dir /wheels '.[demo]'

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 costbot \
    && mkdir -p /data /etc/costbot && chown costbot /data
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index /wheels/*.whl && rm -rf /wheels
COPY config/costbot.example.yaml /etc/costbot/costbot.example.yaml
USER 10001
WORKDIR /data
VOLUME ["/data"]
ENV COSTBOT_CONFIG=/etc/costbot/costbot.yaml \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
EXPOSE 8080
# The probe assumes serve.listen keeps port 8080 (the default); change both together.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4).status != 200)"]
ENTRYPOINT ["costbot"]
CMD ["serve"]
