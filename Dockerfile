# One image for every service; the command picks which (`python -m ess_sink`, ...).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY libs ./libs
COPY services ./services
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --system --uid 10001 ess \
    && mkdir -p /var/lib/ess-collector && chown ess /var/lib/ess-collector  # collector spool
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER ess
ENV ESS_LOG_FORMAT=json ESS_HTTP_HOST=0.0.0.0 ESS_HTTP_PORT=8080
EXPOSE 8080
CMD ["python", "-m", "ess_sink"]
