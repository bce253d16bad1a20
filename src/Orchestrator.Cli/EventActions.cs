// `events`, and the event stream behind `--wait`.
using System.Globalization;
using System.Net.Http;
using System.Threading.Channels;
using Orchestrator.Contracts;

namespace Orchestrator.Cli;

internal sealed partial class ClientActions
{
    /// <summary>How often a following <c>events</c> tries to resume in a row before it gives up.</summary>
    private const int MaxResumes = 10;

    public async Task<int> EventsAsync(EventsArgs args, CancellationToken ct)
    {
        using var api = Connect(args.Client);
        var table = args.Client.Output == OutputFormat.Table;
        var names = table ? await VmNamesAsync(api, ct) : [];
        if (table)
        {
            context.Out.WriteLine(EventRendering.Header);
        }

        var after = args.After;
        var resumes = 0; // tries since the last event came
        while (true)
        {
            string broke;
            try
            {
                using var stream = await api.OpenEventStreamAsync(ApiClient.EventsPath(args.Follow, args.Types, args.Vm, after), ct);
                await foreach (var sse in stream.ReadAsync(EventStreamResponse.IdleTimeout, ct))
                {
                    resumes = 0;
                    if (table)
                    {
                        var e = ApiEvent.Parse(sse.Data);
                        Remember(names, e, args.Vm);
                        context.Out.WriteLine(EventRendering.Line(e, names));
                    }
                    else
                    {
                        context.Out.WriteLine(sse.Data);
                    }

                    await context.Out.FlushAsync(ct);
                    after = long.TryParse(sse.Id, NumberStyles.None, CultureInfo.InvariantCulture, out var id) ? id : after;
                }

                if (!args.Follow)
                {
                    return 0;
                }

                broke = "the node ended the stream"; // it is stopping: resume once it (or another) answers
            }
            catch (Exception e) when (e is IOException or HttpRequestException or TimeoutException
                                      || (resumes > 0 && e is CliException and not ApiProblemException))
            {
                // The stream broke, or (resuming) the node is not back yet. A problem answer (401, 404) is final, and so
                // is a node that cannot be reached at all at first.
                broke = e.Message;
                if (!args.Follow)
                {
                    throw new CliException($"the event stream broke: {broke}");
                }
            }

            if (++resumes > MaxResumes)
            {
                throw new CliException($"lost the event stream and could not resume it: {broke}");
            }

            if (resumes == 1)
            {
                await context.Error.WriteLineAsync(after is { } last
                    ? $"event stream interrupted; resuming after event {last.ToString(CultureInfo.InvariantCulture)}"
                    : "event stream interrupted; resuming");
            }

            await Task.Delay(TimeSpan.FromSeconds(Math.Min(5, resumes)), ct);
        }
    }

    /// <summary>Names of the VMs that exist now; VMs created later are named by their VmRequested.</summary>
    private static async Task<Dictionary<string, string>> VmNamesAsync(ApiClient api, CancellationToken ct)
    {
        try
        {
            return (await api.GetAsync("v1/vms", ct)).Read<List<VmDto>>()
                .GroupBy(v => v.Id.Replace("-", "", StringComparison.Ordinal))
                .ToDictionary(g => g.Key, g => g.First().Name, StringComparer.Ordinal);
        }
        catch (CliException)
        {
            return new Dictionary<string, string>(StringComparer.Ordinal); // ids stand in for names
        }
    }

    private static void Remember(Dictionary<string, string> names, ApiEvent e, string? filteredVm)
    {
        if (e.VmId is null)
        {
            return;
        }

        if (e.Type == "VmRequested" && e.Data.TryGetProperty("spec", out var spec) && spec.TryGetProperty("name", out var name)
            && name.GetString() is { } created)
        {
            names[e.VmId] = created;
        }
        else if (filteredVm is not null)
        {
            names.TryAdd(e.VmId, filteredVm); // --vm: every event is that VM's
        }
    }

    /// <summary>
    /// The id of the newest event the caller can see (0: none yet), taken before a command so that waiting on its
    /// effect reads only what comes after; null when the node has no event stream (waiting then polls).
    /// </summary>
    private static async Task<long?> EventHeadAsync(ApiClient api, CancellationToken ct)
    {
        try
        {
            using var stream = await api.OpenEventStreamAsync(ApiClient.EventsPath(follow: false, last: 1), ct);
            long head = 0;
            await foreach (var sse in stream.ReadAsync(EventStreamResponse.IdleTimeout, ct))
            {
                head = long.TryParse(sse.Id, NumberStyles.None, CultureInfo.InvariantCulture, out var id) ? Math.Max(head, id) : head;
            }

            return head;
        }
        catch (Exception e) when (e is IOException or HttpRequestException or TimeoutException or CliException)
        {
            return null;
        }
    }
}

/// <summary>
/// One VM's events after an offset, read in the background while <c>--wait</c> waits: each says the VM's state may
/// have changed, so the wait looks again only then instead of on a timer.
/// </summary>
internal sealed class VmEventWatch : IAsyncDisposable
{
    /// <summary>Events after which the VM's state stays put until someone acts: a wait for them is over.</summary>
    private static readonly HashSet<string> Settling = new(StringComparer.Ordinal) { "VmReady", "VmStopped", "VmFailed", "VmReleased" };

    private readonly Channel<string> _events = Channel.CreateUnbounded<string>(new UnboundedChannelOptions { SingleReader = true });
    private readonly CancellationTokenSource _stop;
    private readonly EventStreamResponse _stream;
    private readonly Task _reading;

    private VmEventWatch(EventStreamResponse stream, CancellationToken ct)
    {
        _stream = stream;
        _stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        _reading = Task.Run(ReadAsync);
    }

    /// <summary>The stream ended or broke: the wait polls from here on.</summary>
    public bool Broken { get; private set; }

    /// <summary>
    /// An event came that ends the wait one way or another; the node's answer about the VM may lag it by a moment
    /// (the journal is read before the scheduler applied it), so the wait polls briefly until it agrees.
    /// </summary>
    public bool Settled { get; private set; }

    /// <summary>Null when the node has no event stream, or no VM of that name any more: poll instead.</summary>
    public static async Task<VmEventWatch?> TryOpenAsync(ApiClient api, string name, long after, CancellationToken ct)
    {
        try
        {
            return new VmEventWatch(await api.OpenEventStreamAsync(ApiClient.EventsPath(follow: true, vm: name, after: after), ct), ct);
        }
        catch (CliException)
        {
            return null;
        }
    }

    /// <summary>Returns when the VM has new events (or the stream broke), or after <paramref name="timeout"/>.</summary>
    public async Task NextAsync(TimeSpan timeout, CancellationToken ct)
    {
        using var wait = CancellationTokenSource.CreateLinkedTokenSource(ct);
        wait.CancelAfter(timeout > TimeSpan.Zero ? timeout : TimeSpan.Zero);
        try
        {
            if (!await _events.Reader.WaitToReadAsync(wait.Token))
            {
                Broken = true;
                return;
            }
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            return; // the deadline: the caller looks once more and gives up
        }

        while (_events.Reader.TryRead(out var type))
        {
            Settled |= Settling.Contains(type);
        }
    }

    private async Task ReadAsync()
    {
        try
        {
            await foreach (var sse in _stream.ReadAsync(EventStreamResponse.IdleTimeout, _stop.Token))
            {
                await _events.Writer.WriteAsync(sse.Type, _stop.Token);
            }
        }
        catch (Exception e) when (e is IOException or HttpRequestException or TimeoutException or OperationCanceledException or ObjectDisposedException)
        {
            // Broken or hung up: the wait polls.
        }
        finally
        {
            _events.Writer.TryComplete();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _stream.Dispose();
        await _reading;
        _stop.Dispose();
    }
}
