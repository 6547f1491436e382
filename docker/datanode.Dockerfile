# dfs-datanode: block storage, FROM scratch. The build context is the directory
# docker/build-images stages (binaries, their libraries and a tiny root file system); build with `make images`.
FROM scratch
COPY rootfs/ /
COPY --chown=65532:65532 data/ /data/
COPY dfs-datanode dfs-probe /bin/
ENV DFS_DATANODE_GRPC_LISTEN=0.0.0.0:9866 \
    DFS_DATANODE_HTTP_LISTEN=0.0.0.0:9864 \
    DFS_DATANODE_DATA_DIR=/data \
    NO_COLOR=1
VOLUME /data
EXPOSE 9866 9864
USER 65532:65532
HEALTHCHECK --interval=5s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/bin/dfs-probe", "http://127.0.0.1:9864/health"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/bin/dfs-datanode"]
