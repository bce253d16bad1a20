using System.Globalization;
using System.Text.Json.Nodes;

namespace Orchestrator.Tools.Chaos;

/// <summary>
/// Follows <c>GET /v1/events</c> through the whole run as a client would: when its host goes away it reconnects to
/// another with <c>Last-Event-ID</c>, and keeps every event in the order it arrived, for the checker to compare with
/// the journal.
/// </summary>
public sealed class EventRecorder(ChaosCluster cluster, int seed)
{
    private readonly List<StreamedEvent> _events = [];

    public int Reconnects { get; private set; }

    public IReadOnlyList<StreamedEvent> Events
    {
        get
        {
            lock (_events)
            {
                return _events.ToList();
            }
        }
    }

    public async Task RunAsync(CancellationToken stop)
    {
        var random = new Random(seed);
        long? last = null;
        while (!stop.IsCancellationRequested)
        {
            var host = random.Next(1, cluster.Hosts + 1);
            try
            {
                if (cluster.Client(host) is { } http)
                {
                    using var streaming = new HttpClient { BaseAddress = http.BaseAddress, Timeout = Timeout.InfiniteTimeSpan };
                    streaming.DefaultRequestHeaders.Authorization = http.DefaultRequestHeaders.Authorization;
                    using var request = new HttpRequestMessage(HttpMethod.Get, "v1/events");
                    if (last is { } id)
                    {
                        request.Headers.Add("Last-Event-ID", id.ToString(CultureInfo.InvariantCulture));
                    }

                    // A partitioned or frozen host sends nothing and never hangs up: a stream quiet longer than the
                    // server's keep-alive (15 s) is taken for dead.
                    using var response = await streaming.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, stop);
                    if (response.IsSuccessStatusCode)
                    {
                        await foreach (var e in ReadAsync(await response.Content.ReadAsStreamAsync(stop), TimeSpan.FromSeconds(20), stop))
                        {
                            lock (_events)
                            {
                                _events.Add(e);
                            }

                            last = e.Offset;
                        }
                    }
                }
            }
            catch (Exception ex) when (ex is HttpRequestException or IOException or OperationCanceledException)
            {
            }

            if (!stop.IsCancellationRequested)
            {
                Reconnects++;
                await Task.Delay(500, CancellationToken.None);
            }
        }
    }

    /// <summary>Every event in the journal, read once from whichever host answers.</summary>
    public async Task<IReadOnlyList<StreamedEvent>> ReplayAsync(CancellationToken ct)
    {
        foreach (var host in Enumerable.Range(1, cluster.Hosts))
        {
            if (cluster.Client(host) is not { } http)
            {
                continue;
            }

            try
            {
                using var patience = CancellationTokenSource.CreateLinkedTokenSource(ct);
                patience.CancelAfter(TimeSpan.FromSeconds(60));
                using var response = await http.GetAsync("v1/events?follow=false", HttpCompletionOption.ResponseHeadersRead, patience.Token);
                if (!response.IsSuccessStatusCode)
                {
                    continue;
                }

                var events = new List<StreamedEvent>();
                await foreach (var e in ReadAsync(await response.Content.ReadAsStreamAsync(patience.Token), TimeSpan.FromSeconds(30), patience.Token))
                {
                    events.Add(e);
                }

                return events;
            }
            catch (Exception ex) when (ex is HttpRequestException or IOException or OperationCanceledException)
            {
            }
        }

        throw new InvalidOperationException("no host answered a replay of the event stream");
    }

    /// <summary>Server-Sent Events: <c>id</c>, <c>event</c> and <c>data</c> lines up to a blank line; comments skipped.</summary>
    private static async IAsyncEnumerable<StreamedEvent> ReadAsync(Stream stream, TimeSpan quiet,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken ct)
    {
        using var reader = new StreamReader(stream);
        long? id = null;
        string? type = null, data = null;
        while (true)
        {
            using var line = CancellationTokenSource.CreateLinkedTokenSource(ct);
            line.CancelAfter(quiet);
            if (await reader.ReadLineAsync(line.Token) is not { } text)
            {
                yield break;
            }

            if (text.Length == 0)
            {
                if (id is { } offset && type is not null)
                {
                    yield return new StreamedEvent(offset, type, data is null ? null : (string?)JsonNode.Parse(data)?["vmId"]);
                }

                (id, type, data) = (null, null, null);
            }
            else if (text.StartsWith("id: ", StringComparison.Ordinal))
            {
                id = long.Parse(text[4..], CultureInfo.InvariantCulture);
            }
            else if (text.StartsWith("event: ", StringComparison.Ordinal))
            {
                type = text[7..];
            }
            else if (text.StartsWith("data: ", StringComparison.Ordinal))
            {
                data = text[6..];
            }
        }
    }
}
