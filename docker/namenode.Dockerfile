# dfs-namenode: the metadata server, FROM scratch. The build context is the directory
# docker/build-images stages (binaries, their libraries and a tiny root file system); build with `make images`.
FROM scratch
COPY rootfs/ /
COPY --chown=65532:65532 data/ /data/
COPY dfs-namenode dfs-probe /bin/
ENV DFS_NAMENODE_LISTEN=0.0.0.0:9870 \
    DFS_NAMENODE_DATA_DIR=/data \
    NO_COLOR=1
VOLUME /data
EXPOSE 9870
USER 65532:65532
HEALTHCHECK --interval=5s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/bin/dfs-probe", "http://127.0.0.1:9870/metrics"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/bin/dfs-namenode"]
