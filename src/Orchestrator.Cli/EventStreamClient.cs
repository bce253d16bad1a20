// The client side of GET /v1/events: opening the stream, parsing Server-Sent Events, and printing events as lines.
using System.Globalization;
using System.Net.Http.Headers;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using Orchestrator.Contracts;

namespace Orchestrator.Cli;

/// <summary>One Server-Sent Event: the stream's last event id (an event's journal offset), its type and its data.</summary>
internal sealed record ServerSentEvent(string? Id, string Type, string Data);

/// <summary>One event as the API sends it in <c>data:</c>.</summary>
/// <param name="Data">the event's own fields.</param>
public sealed record ApiEvent(long Id, string Type, string? Tenant, string? VmId, DateTimeOffset? At, JsonElement Data)
{
    public static ApiEvent Parse(string json)
    {
        try
        {
            return JsonSerializer.Deserialize<ApiEvent>(json, WireJson.Options) ?? throw new JsonException("null");
        }
        catch (JsonException e)
        {
            throw new CliException($"the node sent an event that is not the JSON this client expects: {e.Message}");
        }
    }
}

/// <summary>An open event stream; disposing it hangs up, which ends the query on the node.</summary>
internal sealed class EventStreamResponse(HttpResponseMessage response, Stream body) : IDisposable
{
    /// <summary>
    /// A following stream sends a comment every 15 s: this long without a line means the connection is dead even if
    /// the socket has not said so.
    /// </summary>
    public static readonly TimeSpan IdleTimeout = TimeSpan.FromSeconds(45);

    /// <summary>
    /// The events until the node ends the stream (the format of https://html.spec.whatwg.org/#event-stream-interpretation;
    /// comments, the heartbeats, yield nothing). A stream quiet for <paramref name="idleTimeout"/> throws TimeoutException.
    /// </summary>
    public async IAsyncEnumerable<ServerSentEvent> ReadAsync(TimeSpan idleTimeout, [EnumeratorCancellation] CancellationToken ct)
    {
        using var reader = new StreamReader(body, Encoding.UTF8);
        string? lastId = null;
        var type = "";
        var data = new StringBuilder();
        var hasData = false;
        while (await ReadLineAsync(reader, idleTimeout, ct) is { } line)
        {
            if (line.Length == 0)
            {
                if (hasData)
                {
                    yield return new ServerSentEvent(lastId, type.Length > 0 ? type : "message", data.ToString());
                }

                type = "";
                data.Clear();
                hasData = false;
                continue;
            }

            if (line[0] == ':')
            {
                continue;
            }

            var colon = line.IndexOf(':');
            var field = colon < 0 ? line : line[..colon];
            var value = colon < 0 ? "" : line[(colon + 1)..];
            if (value.StartsWith(' '))
            {
                value = value[1..];
            }

            switch (field)
            {
                case "id" when !value.Contains('\0'):
                    lastId = value;
                    break;
                case "event":
                    type = value;
                    break;
                case "data":
                    if (hasData)
                    {
                        data.Append('\n');
                    }

                    data.Append(value);
                    hasData = true;
                    break;
            }
        }

        // An event cut off by the end of the stream is dropped, as a browser drops it: its id was never seen.
    }

    private static async Task<string?> ReadLineAsync(StreamReader reader, TimeSpan idleTimeout, CancellationToken ct)
    {
        using var idle = CancellationTokenSource.CreateLinkedTokenSource(ct);
        idle.CancelAfter(idleTimeout);
        try
        {
            return await reader.ReadLineAsync(idle.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            throw new TimeoutException($"the event stream sent nothing for {idleTimeout.TotalSeconds:0} s");
        }
    }

    public void Dispose()
    {
        body.Dispose();
        response.Dispose();
    }
}

internal sealed partial class ApiClient
{
    /// <summary>
    /// <c>GET</c> of an event stream: returns once the node has answered with its headers; an error status throws
    /// <see cref="ApiProblemException"/> as every call does. The request timeout covers the answer, not the stream.
    /// </summary>
    public async Task<EventStreamResponse> OpenEventStreamAsync(string pathAndQuery, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, pathAndQuery);
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/event-stream"));
        HttpResponseMessage response;
        try
        {
            response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct).ConfigureAwait(false);
        }
        catch (HttpRequestException e)
        {
            throw new CliException(DescribeUnreachable(e));
        }
        catch (TaskCanceledException) when (!ct.IsCancellationRequested)
        {
            throw new CliException($"the node at {Display(Url)} did not answer within {RequestTimeout.TotalSeconds:0} s");
        }

        if (!response.IsSuccessStatusCode)
        {
            using (response)
            {
                var text = await response.Content.ReadAsStringAsync(ct).ConfigureAwait(false);
                throw new ApiProblemException(ReadProblem(text, response), (int)response.StatusCode);
            }
        }

        try
        {
            return new EventStreamResponse(response, await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false));
        }
        catch
        {
            response.Dispose();
            throw;
        }
    }

    /// <summary>The path and query of <c>GET /v1/events</c>; every value escaped.</summary>
    public static string EventsPath(bool follow, IReadOnlyCollection<string>? types = null, string? vm = null, long? after = null, int? last = null)
    {
        var query = new StringBuilder("v1/events?follow=").Append(follow ? "true" : "false");
        if (types is { Count: > 0 })
        {
            query.Append("&type=").Append(Uri.EscapeDataString(string.Join(',', types)));
        }

        if (vm is not null)
        {
            query.Append("&vm=").Append(Uri.EscapeDataString(vm));
        }

        if (after is { } offset)
        {
            query.Append("&after=").Append(offset.ToString(CultureInfo.InvariantCulture));
        }

        if (last is { } count)
        {
            query.Append("&last=").Append(count.ToString(CultureInfo.InvariantCulture));
        }

        return query.ToString();
    }
}

/// <summary>An event as one line for people: id, time, type, VM, and what changed.</summary>
public static class EventRendering
{
    public static string Header => Columns("ID", "TIME", "TYPE", "VM", "DETAIL");

    /// <param name="names">VM names by id, where known; otherwise the id's first 12 digits stand in.</param>
    public static string Line(ApiEvent e, IReadOnlyDictionary<string, string> names)
    {
        var vm = e.VmId is null ? "-" : names.TryGetValue(e.VmId, out var name) ? name : e.VmId[..Math.Min(12, e.VmId.Length)];
        var time = e.At?.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture) ?? "-";
        return Columns(e.Id.ToString(CultureInfo.InvariantCulture), time, e.Type, vm, Detail(e));
    }

    /// <summary>What an event says beyond its type, briefly; an event type this client does not know shows its data.</summary>
    public static string Detail(ApiEvent e)
    {
        var d = e.Data;
        return e.Type switch
        {
            "VmRequested" => $"tenant {Text(d, "tenant")}, {Text(d, "spec", "vcpus")} vCPU, {Text(d, "spec", "memoryMiB")} MiB, image {Text(d, "spec", "image")}",
            "VmPlaced" => $"on {Text(d, "hostId")}, epoch {Text(d, "epoch")}",
            "VmPending" => Text(d, "reason"),
            "VmStarted" => $"pid {Text(d, "pid")}, epoch {Text(d, "epoch")}",
            "VmReady" => $"epoch {Text(d, "epoch")}",
            "VmRestarting" => $"attempt {Text(d, "attempt")}: {Text(d, "reason")}",
            "VmStopped" or "VmFailed" => Text(d, "reason"),
            "VmDesiredStateChanged" => $"desired {Text(d, "desired")}",
            "VmDeleteRequested" or "VmReleased" => "",
            "VmLabelsChanged" => d.TryGetProperty("labels", out var labels) && labels.ValueKind == JsonValueKind.Object
                ? string.Join(", ", labels.EnumerateObject().Select(l => $"{l.Name}={l.Value}"))
                : "",
            "SharesChanged" => d.TryGetProperty("entitledMillicores", out var m) && m.ValueKind == JsonValueKind.Number
                ? $"entitled {CpuAmounts.Format(m.GetInt64())} on {Text(d, "hostId")}"
                : $"no entitlement on {Text(d, "hostId")}",
            "HostRegistered" => $"host {Text(d, "hostId")}: {Text(d, "cpus")} CPUs, {Text(d, "memoryMiB")} MiB, {Text(d, "driver")}",
            "HostLost" => $"host {Text(d, "hostId")}",
            _ => Shorten(d.GetRawText(), 100),
        };
    }

    private static string Columns(string id, string time, string type, string vm, string detail) =>
        $"{id,8}  {time,-24}  {type,-21}  {Plain(vm),-16}  {Plain(detail)}".TrimEnd();

    private static string Text(JsonElement data, params string[] path)
    {
        foreach (var name in path)
        {
            if (data.ValueKind != JsonValueKind.Object || !data.TryGetProperty(name, out data))
            {
                return "?";
            }
        }

        return data.ValueKind switch
        {
            JsonValueKind.String => data.GetString()!,
            JsonValueKind.Null => "-",
            _ => data.GetRawText(),
        };
    }

    /// <summary>Names, reasons and labels come from tenants: no control character (an escape sequence) reaches the terminal.</summary>
    private static string Plain(string text) =>
        text.Any(char.IsControl) ? new string(text.Select(c => char.IsControl(c) ? '?' : c).ToArray()) : text;

    private static string Shorten(string text, int max) => text.Length > max ? text[..(max - 1)] + "…" : text;
}
