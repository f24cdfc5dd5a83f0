# gpuledger: `gpuledger serve` (default) or `gpuledger dashboard --host 0.0.0.0` from one image.
# Build: docker build -t gpuledger:0.1.0 .   Deploy: deploy/ (README, "Deployment").
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY core core
COPY collectors collectors
COPY analytics analytics
COPY alerts alerts
COPY app app
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim-bookworm
# a fixed, unprivileged uid: the Deployment's securityContext (runAsUser/fsGroup 10001) matches it
RUN useradd --uid 10001 --user-group --create-home --home-dir /home/gpuledger gpuledger \
    && mkdir -p /var/lib/gpuledger /etc/gpuledger && chown 10001:10001 /var/lib/gpuledger
COPY --from=build /install /usr/local
USER 10001:10001
WORKDIR /var/lib/gpuledger
ENV GPULEDGER_CONFIG=/etc/gpuledger/gpuledger.yaml \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
VOLUME ["/var/lib/gpuledger"]
EXPOSE 9464 8501
ENTRYPOINT ["gpuledger"]
CMD ["serve"]
