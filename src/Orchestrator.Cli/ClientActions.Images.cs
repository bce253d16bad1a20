// `image import`: the file streamed to the node with its progress on stderr (a bar on a terminal, a line per tenth else).
using System.Net.Http.Headers;
using Orchestrator.Contracts;
using Spectre.Console;

namespace Orchestrator.Cli;

internal sealed partial class ClientActions
{
    /// <summary>An upload of gigabytes takes longer than an API call may: the node answers once it has read and checked it all.</summary>
    private static readonly TimeSpan ImportTimeout = TimeSpan.FromHours(2);

    public async Task<int> ImageImportAsync(ImageImportArgs args, CancellationToken ct)
    {
        FileStream file;
        try
        {
            file = new FileStream(args.File, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20, useAsync: true);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new CliException($"cannot read {args.File}: {ex.Message}");
        }

        await using var _ = file;
        using var api = Connect(args.Client, ImportTimeout);
        var query = $"v1/images?name={Uri.EscapeDataString(args.Name)}&format={Uri.EscapeDataString(args.Format)}" +
                    $"&kernel={Uri.EscapeDataString(args.Kernel)}&public={(args.Public ? "true" : "false")}";
        var total = file.Length;

        async Task<ApiResponse> UploadAsync(Action<long> progress)
        {
            var content = new StreamContent(new ProgressStream(file, progress), 1 << 20);
            content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
            content.Headers.ContentLength = total;
            return await api.PostContentAsync(query, content, ct);
        }

        ApiResponse response;
        if (context.ErrorIsTerminal)
        {
            response = await _err.Progress()
                .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new TransferSpeedColumn(), new RemainingTimeColumn())
                .StartAsync(async progress =>
                {
                    var bar = progress.AddTask($"uploading {Markup.Escape(Path.GetFileName(args.File))}", maxValue: Math.Max(1, total));
                    var answer = await UploadAsync(sent => bar.Value = sent);
                    bar.Value = bar.MaxValue;
                    return answer;
                });
        }
        else
        {
            var shown = -1L;
            response = await UploadAsync(sent =>
            {
                var tenth = total > 0 ? sent * 10 / total : 10;
                if (tenth > shown)
                {
                    shown = tenth;
                    context.Error.WriteLine($"uploaded {sent} of {total} bytes ({tenth * 10}%)");
                }
            });
        }

        if (args.Client.Output == OutputFormat.Json)
        {
            WriteJson(response);
            return 0;
        }

        var image = response.Read<ImageDto>();
        context.Error.WriteLine($"image '{image.Name}' imported: {image.Format}, {image.Bytes} bytes, virtual size {image.VirtualBytes} bytes, " +
                                $"booted with {image.Kernel}'s kernel{(image.Public == true ? ", public" : "")}");
        context.Out.WriteLine($"sha256 {image.Sha256}");
        return 0;
    }

    /// <summary>A read-only view of a stream that reports how many bytes were read from it so far.</summary>
    private sealed class ProgressStream(Stream inner, Action<long> progress) : Stream
    {
        private long _read;

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => inner.Length;

        public override long Position
        {
            get => _read;
            set => throw new NotSupportedException();
        }

        public override int Read(byte[] buffer, int offset, int count) => Counted(inner.Read(buffer, offset, count));

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            Counted(await inner.ReadAsync(buffer, cancellationToken));

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        private int Counted(int read)
        {
            _read += read;
            progress(_read);
            return read;
        }

        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
