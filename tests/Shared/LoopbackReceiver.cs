using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;

namespace Orchestrator.Tests.Shared;

/// <summary>One POST a <see cref="LoopbackReceiver"/> got, and the status it answered with.</summary>
public sealed record ReceivedPost(byte[] Body, string? Signature, string? DeliveryId, HttpStatusCode Answered);

/// <summary>
/// An HTTP receiver on a free loopback port for webhook tests: answers every POST with <see cref="Status"/> as it is at
/// that moment, and records body, signature and delivery id.
/// </summary>
public sealed class LoopbackReceiver : IDisposable
{
    private readonly HttpListener _listener = new();
    private readonly CancellationTokenSource _stop = new();
    private volatile int _status;

    public LoopbackReceiver(HttpStatusCode status)
    {
        Status = status;
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        var port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        Url = $"http://127.0.0.1:{port}/hook";
        _listener.Prefixes.Add($"http://127.0.0.1:{port}/");
        _listener.Start();
        _ = Task.Run(async () =>
        {
            while (!_stop.IsCancellationRequested)
            {
                HttpListenerContext context;
                try
                {
                    context = await _listener.GetContextAsync();
                }
                catch (Exception) when (_stop.IsCancellationRequested)
                {
                    return;
                }

                using var buffer = new MemoryStream();
                await context.Request.InputStream.CopyToAsync(buffer);
                var answered = Status;
                Received.Enqueue(new ReceivedPost(buffer.ToArray(), context.Request.Headers["X-Orchestrator-Signature"],
                    context.Request.Headers["X-Orchestrator-Delivery"], answered));
                context.Response.StatusCode = (int)answered;
                context.Response.Close();
            }
        });
    }

    public HttpStatusCode Status
    {
        get => (HttpStatusCode)_status;
        set => _status = (int)value;
    }

    public string Url { get; }

    public ConcurrentQueue<ReceivedPost> Received { get; } = new();

    public void Dispose()
    {
        _stop.Cancel();
        _listener.Close();
    }
}
