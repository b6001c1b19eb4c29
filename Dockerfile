# costbot container image: a slim, non-root runtime with the store on a /data volume.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY costbot costbot
COPY cleaners cleaners
RUN pip wheel --no-cache-dir --wheel-dir /wheels '.[demo]'

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 costbot \
    && mkdir -p /data /etc/costbot && chown costbot /data
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index /wheels/*.whl && rm -rf /wheels
USER costbot
WORKDIR /data
VOLUME ["/data"]
ENV COSTBOT_CONFIG=/etc/costbot/costbot.yaml \
    PYTHONUNBUFFERED=1
ENTRYPOINT ["costbot"]
CMD ["demo"]
